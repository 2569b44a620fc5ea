"""A room's vocabulary: the names and words its people expect to hear. No model, no I/O.

What a vocabulary may hold (`check_vocabulary`: at most 500 phrases of at most 64 characters),
how the phrases a room set and the names its graph learnt are merged (`merged`), which of them
a first transcript suggests (`spotted`: a cheap keyword spotting on the heard words, after the
published contextual-biasing practice of prompting only names found in a first pass), and how a
heard name close to a phrase is written as the phrase (`close_runs`, `written_as`).

Closeness is rapidfuzz's ratio between a phrase and every run of heard words about as long,
spaces and case set aside (Whisper splits and joins unknown names freely: "Anishmet" for "Anna
Schmidt", "Goth and Bird" for "Gothenburg"), on the letters or on a rough sound key, whichever
is closer ("Aqia" and "IKEA" sound alike and are spelled apart).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

MAX_PHRASES = 500
MAX_PHRASE_CHARS = 64
EXTRA_WORDS = 2  # a name may be heard as up to this many words more than it has


class BadVocabulary(ValueError):
    """A vocabulary that breaks the bounds: the message says which phrase and why."""


def check_vocabulary(value: object) -> tuple[str, ...]:
    """A vocabulary from JSON: a list of non-empty strings of at most `MAX_PHRASE_CHARS`
    characters, at most `MAX_PHRASES` of them once repeats are merged; spaces tidied, order
    kept. Raises `BadVocabulary`."""
    if not isinstance(value, list):
        raise BadVocabulary("a vocabulary is a JSON list of strings")
    phrases: dict[str, str] = {}  # by casefold: one spelling of each phrase, the first
    for i, phrase in enumerate(value):
        if not isinstance(phrase, str):
            raise BadVocabulary(f"phrase {i} is not a string")
        phrase = " ".join(phrase.split())
        if not phrase:
            raise BadVocabulary(f"phrase {i} is empty")
        if len(phrase) > MAX_PHRASE_CHARS:
            raise BadVocabulary(f"phrase {i} has {len(phrase)} characters, more than "
                                f"{MAX_PHRASE_CHARS}")
        phrases.setdefault(phrase.casefold(), phrase)
    if len(phrases) > MAX_PHRASES:
        raise BadVocabulary(f"{len(phrases)} phrases, more than {MAX_PHRASES}")
    return tuple(phrases.values())


def read_vocabulary(path: str | Path) -> tuple[str, ...]:
    """A vocabulary file: one phrase per line, blank lines skipped. Raises `BadVocabulary`
    (with the file's name) or OSError."""
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        return check_vocabulary(lines)
    except BadVocabulary as e:
        raise BadVocabulary(f"{path}: {e} (phrase numbers count non-blank lines from 0)") from None


def merged(*vocabularies: Iterable[str], limit: int = MAX_PHRASES) -> tuple[str, ...]:
    """The phrases of each vocabulary in turn, each once (case aside), the first `limit`."""
    phrases: dict[str, str] = {}
    for vocabulary in vocabularies:
        for phrase in vocabulary:
            if len(phrases) >= limit:
                return tuple(phrases.values())
            phrases.setdefault(phrase.casefold(), phrase)
    return tuple(phrases.values())


@dataclass(frozen=True)
class HeardWord:
    start: int  # character span of the word in the text, its punctuation left out
    end: int
    key: str  # its letters and digits, lower case
    named: bool  # written as a name is: a capital first (and not "I"), or digits


def heard_words(text: str) -> list[HeardWord]:
    words = []
    for m in re.finditer(r"\S+", text):
        inner = re.search(r"\w(?:.*\w)?", m.group())
        if inner is not None:
            word = inner.group()
            words.append(HeardWord(m.start() + inner.start(), m.start() + inner.end(),
                               re.sub(r"\W", "", word).casefold(),
                               (word[0].isupper() and word != "I") or word[0].isdigit()))
    return words


def phrase_key(phrase: str) -> str:
    return re.sub(r"\W", "", phrase).casefold()


# English spellings that sound alike, then letters of one sound class, in this order.
_SOUNDS = [("ph", "f"), ("sch", "sh"), ("ck", "k"), ("qu", "kw"), ("x", "ks"),
           (r"c(?=[eiy])", "s"), ("c", "k"), ("q", "k"), ("z", "s"), ("v", "f"), ("w", "u"),
           (r"(?<=[^sc])h", ""), ("d", "t"), ("b", "p"), ("g", "k")]


def sound_key(key: str) -> str:
    """A rough English sound key of lower-case letters: alike-sounding spellings made one,
    every run of vowels one `a`, doubled letters single ("aqia" and "ikea" both give "aka")."""
    for spelled, sound in _SOUNDS:
        key = re.sub(spelled, sound, key)
    key = re.sub(r"[aeiouy]+", "a", key)
    return re.sub(r"(.)\1+", r"\1", key)


@dataclass(frozen=True)
class Match:
    phrase: str
    first: int  # the heard words it matches, first to last (inclusive)
    last: int
    score: float  # rapidfuzz ratio, 0..100
    start: int  # the characters of those words in the text, outer punctuation left out
    end: int


def matches(text: str, phrases: Sequence[str], threshold: float,
            named_ends: int = 2) -> list[Match]:
    """Each phrase's best run of heard words, where it scores at least `threshold`; runs of
    one word fewer to `EXTRA_WORDS` more than the phrase has words, at least `named_ends` of
    whose two end words are written as names (2: from such a word to another; 0: any run)."""
    best: dict[str, Match] = {}
    for m in candidates(text, phrases, threshold, named_ends):
        if m.phrase not in best or m.score > best[m.phrase].score:
            best[m.phrase] = m  # the first of the closest runs
    return list(best.values())


def candidates(text: str, phrases: Sequence[str], threshold: float,
               named_ends: int = 2) -> list[Match]:
    """Every run of heard words that could be a phrase, by `matches`' rule: each phrase with
    each run that scores at least `threshold`, in the phrases' order, then the runs'."""
    from rapidfuzz import fuzz
    from rapidfuzz.process import cdist

    words = heard_words(text)
    if not words or not phrases:
        return []
    longest = max(len(p.split()) for p in phrases) + EXTRA_WORDS
    # Whisper writes what it takes for a name with capitals, misheard or not: a run of heard
    # words stands for a name where it begins and ends with such a word ("Goth and Bird"). The
    # far tier (`named_ends` 0) takes any run, and leaves it to Whisper's ear ("grid Solberg").
    runs = [(i, j) for i in range(len(words)) for j in range(i, min(len(words), i + longest))
            if words[i].named + words[j].named >= named_ends]
    if not runs:
        return []
    run_keys = ["".join(w.key for w in words[i:j + 1]) for i, j in runs]
    phrase_keys = [phrase_key(p) for p in phrases]
    scores = np.maximum(
        cdist(phrase_keys, run_keys, scorer=fuzz.ratio, workers=1),
        cdist([sound_key(k) for k in phrase_keys], [sound_key(k) for k in run_keys],
              scorer=fuzz.ratio, workers=1))
    sizes = np.array([j - i + 1 for i, j in runs])
    found = []
    for p, phrase in enumerate(phrases):
        extra = sizes - len(phrase.split())
        close = (extra >= -1) & (extra <= EXTRA_WORDS) & (scores[p] >= threshold)
        for r in np.flatnonzero(close):
            i, j = runs[r]
            found.append(Match(phrase, i, j, float(scores[p, r]), words[i].start, words[j].end))
    return found


def closest_per_run(found: Sequence[Match]) -> list[Match]:
    """Of matches of the same heard run, the closest phrase's (the first of equals)."""
    closest: dict[tuple[int, int], Match] = {}
    for m in found:
        if (m.first, m.last) not in closest or m.score > closest[m.first, m.last].score:
            closest[m.first, m.last] = m
    return list(closest.values())


def spotted(text: str, phrases: Sequence[str], threshold: float) -> list[str]:
    """The phrases a first transcript suggests were said, best first. Any run of words may
    suggest one ("the cram layer" for "Vikram Iyer"): a wrong suggestion costs a prompt that
    the guards can refuse, a missed one the name."""
    found = matches(text, phrases, threshold, named_ends=0)
    return [m.phrase for m in sorted(found, key=lambda m: -m.score)]


def apart(found: list[Match]) -> list[Match]:
    """The closest matches that share no heard word, in the text's order."""
    taken: set[int] = set()
    chosen = []
    for m in sorted(found, key=lambda m: -m.score):
        span = set(range(m.first, m.last + 1))
        if not span & taken:
            taken |= span
            chosen.append(m)
    return sorted(chosen, key=lambda m: m.first)


def written_as(text: str, found: Sequence[Match]) -> str:
    """The text with the heard words of each match (none overlapping) written as its phrase."""
    for m in sorted(found, key=lambda m: -m.start):  # from the end: spans hold
        text = text[:m.start] + m.phrase + text[m.end:]
    return text


def close_runs(text: str, phrases: Sequence[str], threshold: float,
               named_ends: int = 2) -> list[Match]:
    """The runs of heard words (with `named_ends` of their end words written as names, as in
    `matches`) close to a phrase and not already written as it: each phrase's closest run, the
    closest phrase where runs overlap. What is snapped (`written_as`), or what Whisper's ear is
    asked about."""
    return [m for m in apart(matches(text, phrases, threshold, named_ends))
            if text[m.start:m.end] != m.phrase]
