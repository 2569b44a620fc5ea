"""What a room learns when a person fixes a name: pairs of heard words and the name they meant.
No model, no I/O.

A correction ("Yell in a picture of a data scientist" → "Elena Petrova, a data scientist") or a
merge ("Charlotte Du Bois" into "Charlotte Dubois") is aligned word by word; each longest
changed span whose meant side is a name, widened to the whole name, gives a `Learnt` pair.
Later hearings of the same or nearly the same words are offered to Whisper's ear as that name
(`learnt_runs`, used by the transcriber beside the vocabulary's close runs), so the ear, not
the pair, decides each time. A pair whose heard words are all everyday words ("can you" →
"Kenya") is never learnt: it would be offered in every other sentence.

Learnt names travel to hearing inside a segment's vocabulary as `LearntName`, a phrase (a
`str`, so every vocabulary path takes it as it is) that also knows how it was misheard.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Iterable, Sequence

from streamre.hearing.names import JOINERS, NOT_NAMES, Learnt
from streamre.hearing.vocabulary import MAX_PHRASE_CHARS, Match, heard_words, phrase_key

LEARNT_THRESHOLD = 90.0  # rapidfuzz ratio at which heard words are "nearly the same"
MAX_LEARNT = 200  # pairs a room keeps, the latest

# Everyday words beside those that seldom begin a name: a heard span made only of these is
# too common to stand for a name.
EVERYDAY = NOT_NAMES | {
    "be", "been", "being", "was", "were", "has", "have", "had", "get", "got", "go", "going",
    "me", "us", "him", "them", "there", "here", "now", "just", "not", "very", "really",
    "know", "think", "see", "say", "said", "want", "like", "one", "two", "way", "up", "out",
    "about", "into", "over", "than", "too", "well", "good", "new", "make", "take", "come",
    "look", "use", "work", "need", "yeah", "right", "thing", "things", "lot", "much", "many",
}


class LearntName(str):
    """A phrase of a segment's vocabulary that a room learnt, with the words it was heard as."""

    heard: tuple[str, ...]

    def __new__(cls, name: str, heard: Iterable[str]) -> LearntName:
        phrase = super().__new__(cls, name)
        phrase.heard = tuple(heard)
        return phrase

    def __reduce__(self):  # kept whole across processes
        return LearntName, (str(self), self.heard)


def learnt_pairs(heard: str, meant: str) -> list[Learnt]:
    """The pairs a correction of `heard` into `meant` teaches: each longest changed span,
    aligned word by word, whose meant words are one name (`_a_name`), widened over the
    unchanged words of that name on both sides ("Sam Pichell" → "Sam Patel", not "Pichell" →
    "Patel"); everyday words alone are never learnt."""
    said, fixed = heard_words(heard), heard_words(meant)

    def in_name(w) -> bool:  # a word that may be part of a name: capitalised, or a joiner
        return w.named or re.fullmatch(JOINERS, meant[w.start:w.end]) is not None

    opcodes = SequenceMatcher(None, [w.key for w in said], [w.key for w in fixed],
                              autojunk=False).get_opcodes()
    pairs: dict[str, Learnt] = {}
    for tag, i1, i2, j1, j2 in opcodes:
        if tag not in ("replace", "insert") or j1 == j2:
            continue
        # Widen over unchanged words of the name either side (equal spans align one to one),
        # joining words included, then back off any that end up at its edges.
        while j1 > 0 and i1 > 0 and in_name(fixed[j1 - 1]) and said[i1 - 1].key == fixed[j1 - 1].key:
            i1, j1 = i1 - 1, j1 - 1
        while j2 < len(fixed) and i2 < len(said) and in_name(fixed[j2]) \
                and said[i2].key == fixed[j2].key:
            i2, j2 = i2 + 1, j2 + 1
        while min(j2 - j1, i2 - i1) > 1 and not fixed[j1].named \
                and said[i1].key == fixed[j1].key:
            i1, j1 = i1 + 1, j1 + 1
        while min(j2 - j1, i2 - i1) > 1 and not fixed[j2 - 1].named \
                and said[i2 - 1].key == fixed[j2 - 1].key:
            i2, j2 = i2 - 1, j2 - 1
        if i1 == i2 or not _a_name(meant, fixed[j1:j2]):
            continue
        pair = Learnt(" ".join(heard[said[i1].start:said[i2 - 1].end].split()),
                      " ".join(meant[fixed[j1].start:fixed[j2 - 1].end].split()))
        if learnable(pair):
            pairs.setdefault(phrase_key(pair.heard), pair)
    return list(pairs.values())


def _a_name(text: str, words: list) -> bool:
    """Whether heard words are one name as people write it: capitalised words, with small
    joining words inside ("Bank of America"); a rewritten sentence teaches no name."""
    return words[0].named and words[-1].named and all(
        w.named or re.fullmatch(JOINERS, text[w.start:w.end]) for w in words)


def learnable(pair: Learnt) -> bool:
    """Whether a pair may be learnt: names of a phrase's length, heard words not all
    everyday ones and not already written as the name."""
    heard_words = [re.sub(r"\W", "", w).casefold() for w in pair.heard.split()]
    return bool(pair.meant) and len(pair.meant) <= MAX_PHRASE_CHARS \
        and len(pair.heard) <= MAX_PHRASE_CHARS and pair.heard != pair.meant \
        and not all(w in EVERYDAY for w in heard_words if w)


def learnt_names(pairs: Sequence[Learnt]) -> list[LearntName]:
    """The names of `pairs`, each once (case aside), with every way each was heard; the
    latest pair's name first."""
    heard: dict[str, list[str]] = {}
    spelled: dict[str, str] = {}
    for pair in reversed(pairs):
        key = pair.meant.casefold()
        spelled.setdefault(key, pair.meant)
        heard.setdefault(key, []).append(pair.heard)
    return [LearntName(spelled[key], forms) for key, forms in heard.items()]


def learnt_runs(text: str, vocabulary: Sequence[str],
                threshold: float = LEARNT_THRESHOLD) -> list[Match]:
    """Runs of heard words (any words: a mishearing need not look like a name) the same or
    nearly the same as a learnt name's heard forms, written as something else than the
    name: what Whisper's ear is asked about."""
    from rapidfuzz import fuzz

    words = heard_words(text)
    found = []
    for name in vocabulary:
        if not isinstance(name, LearntName):
            continue
        for form in name.heard:
            size, key = len(form.split()), phrase_key(form)
            for i in range(len(words)):
                for j in range(i + max(0, size - 2), min(len(words), i + size + 1)):
                    run = "".join(w.key for w in words[i:j + 1])
                    score = fuzz.ratio(key, run)
                    if score >= threshold and text[words[i].start:words[j].end] != name:
                        found.append(Match(name, i, j, float(score), words[i].start,
                                           words[j].end))
    return found
