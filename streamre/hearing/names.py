"""The names a room expects to hear, and where each came from. No model, no I/O.

A meeting's names reach the room from several sources, trusted in this order:

0. the names people corrected a line or merged an entity into (`streamre.hearing.learnt`);
1. what people typed: the room's vocabulary, the meeting's context (an invitation, an agenda),
   and the names in chat lines and notes (even when no fact was read from them);
2. the participants' speaker names;
3. names only ever heard (the room's graph).

Typed and participants' names may rewrite heard words, unless Whisper's own ear refuses the
sentence with the name (`streamre.hearing.ear`). A name only ever heard never
rewrites anything: "Hoboken", misheard once, must not turn a later "Heineken" into "Hoboken".

The context is free text as a person writes it. Its names are found by the reader's entity
tagger where the server has one; `capitalised_names` is the fallback that needs no model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Sequence

from streamre.hearing.vocabulary import MAX_PHRASE_CHARS, MAX_PHRASES

MAX_CONTEXT_BYTES = 64 * 1024  # PROTOCOL 1.3: a context is UTF-8 text of at most 64 KiB


class Source(Enum):
    """Where a name came from, most trusted first (the order of the members)."""

    LEARNT = "learnt"
    VOCABULARY = "vocabulary"
    CONTEXT = "context"
    CHAT = "chat"
    PARTICIPANT = "participant"
    HEARD = "heard"

    @property
    def rewrites(self) -> bool:
        """Whether names of this source may replace heard words (where Whisper's ear lets them)."""
        return self is not Source.HEARD

    @property
    def rank(self) -> int:
        return list(Source).index(self)


@dataclass(frozen=True)
class ExpectedName:
    name: str
    source: Source

    def to_json(self) -> dict:
        return {"name": self.name, "source": self.source.value}


def expected_names(by_source: dict[Source, Iterable[str]],
                   limit: int = MAX_PHRASES) -> list[ExpectedName]:
    """Every source's names, each name once (case and spaces aside) under its most trusted
    source, most trusted first and in each source's own order; at most `limit`."""
    kept: dict[str, ExpectedName] = {}
    for source in sorted(by_source, key=lambda s: s.rank):
        for name in by_source[source]:
            name = " ".join(name.split())
            if name and len(name) <= MAX_PHRASE_CHARS and len(kept) < limit:
                kept.setdefault(name.casefold(), ExpectedName(name, source))
    return list(kept.values())


def rewriting(names: Sequence[ExpectedName]) -> tuple[str, ...]:
    """The names that may rewrite heard words: what hearing is biased with."""
    return tuple(n.name for n in names if n.source.rewrites)


@dataclass(frozen=True)
class Learnt:
    """A pair a person's correction taught (`streamre.hearing.learnt`)."""
    heard: str  # the words as Whisper wrote them
    meant: str  # the name a person said they were

    def to_json(self) -> dict:
        return {"heard": self.heard, "meant": self.meant}


class BadContext(ValueError):
    """A context that is not UTF-8 text, or is too long."""


def check_context(body: bytes | str) -> str:
    """A context as the server keeps it: UTF-8 text of at most `MAX_CONTEXT_BYTES`, line ends
    made `\\n`. Raises `BadContext`."""
    if isinstance(body, str):
        try:
            body = body.encode("utf-8")
        except UnicodeEncodeError:
            raise BadContext("the context is not valid Unicode text") from None
    if len(body) > MAX_CONTEXT_BYTES:
        raise BadContext(f"the context has {len(body)} bytes, more than {MAX_CONTEXT_BYTES}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadContext(f"the context is not UTF-8 text (byte {e.start})") from None
    if "\x00" in text:
        raise BadContext("the context is text, and holds a NUL character")
    return text.replace("\r\n", "\n").replace("\r", "\n")


# A capitalised word, with its inner apostrophes and hyphens ("O'Neil", "Jean-Luc"), or an
# all-capital acronym ("IKEA", "SAP").
_CAPITALISED = r"[A-Z][\w'’-]*\w|[A-Z]"
# Small words that may sit inside a name ("Bank of America", "Ludwig van Beethoven").
JOINERS = r"of|de|da|del|della|di|du|van|von|der|den|la|le|bin|al"
_NAME_RUN = re.compile(rf"\b(?:{_CAPITALISED})(?:[ \t]+(?:(?:{JOINERS})[ \t]+)?(?:{_CAPITALISED}))*")
# Capitalised words that are seldom names: they begin sentences and fill invitations.
NOT_NAMES = {
    "a", "an", "the", "i", "we", "you", "he", "she", "they", "it", "this", "that", "these",
    "those", "our", "your", "my", "his", "her", "their", "its", "hi", "hello", "dear", "thanks",
    "thank", "please", "best", "regards", "cheers", "kind", "re", "fw", "fwd", "subject", "to",
    "from", "cc", "bcc", "date", "when", "where", "who", "what", "why", "how", "which", "agenda",
    "meeting", "invitation", "invite", "attendees", "attendee", "participants", "guests",
    "optional", "required", "organiser", "organizer", "room", "location", "time", "topic",
    "topics", "notes", "note", "call", "join", "dial", "link", "welcome", "let", "let's", "all",
    "and", "or", "but", "if", "so", "for", "with", "on", "in", "at", "by", "of", "as", "is",
    "are", "will", "can", "could", "would", "should", "must", "do", "does", "did",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january",
    "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "am", "pm", "q1", "q2", "q3", "q4", "mr", "mrs", "ms", "dr",
    "also", "after", "before", "then", "next", "last", "review", "accounts", "account",
    "offices", "office", "invited", "partner", "partners", "hey", "update", "updates",
    "status", "project", "team", "teams", "sync", "standup", "weekly", "daily", "quarterly",
    "yes", "no", "ok", "okay", "any", "some", "each", "every", "other", "more", "most",
}


def context_names(text: str, tagged: Sequence[str] = ()) -> list[str]:
    """The names of a context: those its reader's tagger found (`tagged`), then its
    capitalised runs; a name that is a part of a longer one found ("Dangote" of "Dangote
    Cement") and words that are seldom names are left out; each once, in order."""
    names: dict[str, str] = {}
    for name in [*tagged, *capitalised_names(text)]:
        name = " ".join(name.split())
        if any(c.isalpha() for c in name) and name.casefold() not in NOT_NAMES:
            names.setdefault(name.casefold(), name)
    padded = [f" {key} " for key in names]
    return [name for key, name in names.items()
            if not any(f" {key} " in other and other != f" {key} " for other in padded)]


def capitalised_names(text: str) -> list[str]:
    """Names as a person writes them: runs of capitalised words ("Priya Natarajan", "Bank of
    America", "IKEA"), leading words that are seldom names left out; each once, in order."""
    found: dict[str, str] = {}
    for match in _NAME_RUN.finditer(text):
        for words in _at_joiners(_at_possessives(match.group().split())):
            while words and words[0].casefold().strip("'’") in NOT_NAMES:
                words = words[1:]
            while words and (words[-1].casefold() in NOT_NAMES
                             or re.fullmatch(JOINERS, words[-1])):
                words = words[:-1]
            name = " ".join(words)
            if len(name) > 1 and len(name) <= MAX_PHRASE_CHARS:
                found.setdefault(name.casefold(), name)
    return list(found.values())


def _at_joiners(runs: list[list[str]]) -> list[list[str]]:
    """Runs cut at a small joining word after two or more capitalised words: "Bank of America"
    is one name, "Nora Lindqvist of IKEA" two."""
    cut: list[list[str]] = []
    for run in runs:
        cut.append([])
        for word in run:
            if re.fullmatch(JOINERS, word) and len(cut[-1]) >= 2:
                cut.append([])
            else:
                cut[-1].append(word)
    return [run for run in cut if run]


def _at_possessives(words: list[str]) -> list[list[str]]:
    """A run of words cut after each possessive, which loses its "'s" ("Bank of America's
    Jean-Luc Picard": two names)."""
    runs: list[list[str]] = [[]]
    for word in words:
        possessive = re.search(r"['’]s$", word)
        runs[-1].append(word[:possessive.start()] if possessive else word)
        if possessive:
            runs.append([])
    return [run for run in runs if run]


@dataclass
class MeetingNames:
    """What one room was told of its names, by source (the journal keeps each; see
    `streamre.graph.names_store`). Pure: the room's shell saves what changes.

    vocabulary: the phrases people gave (`PUT …/vocabulary`, `start.vocabulary`).
    context: the meeting's context as written, and `context_names` found in it.
    chat: the names found in typed chat lines and notes, in the order they came.
    participants: the speaker names people joined or typed with.
    learnt: what people's corrections and merges taught (heard words -> meant name), oldest
        first.
    """

    vocabulary: tuple[str, ...] = ()
    context: str = ""
    context_names: tuple[str, ...] = ()
    chat: tuple[str, ...] = ()
    participants: tuple[str, ...] = ()
    learnt: tuple[Learnt, ...] = ()

    def learn(self, pairs: Iterable[Learnt], limit: int) -> bool:
        """Pairs join `learnt` (one per heard words, the latest kept; the latest `limit`);
        whether any was new."""
        pairs = list(pairs)
        heard = {p.heard.casefold() for p in pairs}
        kept = [p for p in self.learnt if p.heard.casefold() not in heard]
        learnt = tuple([*kept, *pairs][-limit:])
        changed = learnt != self.learnt
        self.learnt = learnt
        return changed

    def forget(self, heard: str | None = None, meant: str | None = None) -> int:
        """Forget learnt pairs: those of these heard words, or of this name, or (neither
        given) all; how many went."""
        def goes(p: Learnt) -> bool:
            return (heard is None or p.heard.casefold() == " ".join(heard.split()).casefold()) \
                and (meant is None or p.meant.casefold() == " ".join(meant.split()).casefold())
        kept = tuple(p for p in self.learnt if not goes(p))
        gone = len(self.learnt) - len(kept)
        self.learnt = kept
        return gone

    def typed(self, names: Iterable[str]) -> bool:
        """Names found in a typed line join `chat` (the first `MAX_PHRASES` kept); whether
        any was new."""
        known = {n.casefold() for n in self.chat}
        new = [n for n in dict.fromkeys(" ".join(n.split()) for n in names)
               if n and n.casefold() not in known and len(n) <= MAX_PHRASE_CHARS]
        new = new[:max(0, MAX_PHRASES - len(self.chat))]
        self.chat = (*self.chat, *new)
        return bool(new)

    def joined(self, speaker: str | None) -> None:
        """A participant's speaker name (once each)."""
        speaker = " ".join((speaker or "").split())
        if speaker and speaker.casefold() not in {p.casefold() for p in self.participants}:
            self.participants = (*self.participants, speaker)

    def expected(self, heard: Iterable[str] = ()) -> list[ExpectedName]:
        """Every name the room expects, most trusted first; `heard`: the names its graph
        learnt from speech alone, the least trusted."""
        return expected_names({Source.LEARNT: [p.meant for p in reversed(self.learnt)],
                               Source.VOCABULARY: self.vocabulary,
                               Source.CONTEXT: self.context_names, Source.CHAT: self.chat,
                               Source.PARTICIPANT: self.participants, Source.HEARD: heard})
