"""What a room's graph is told, as the journal and the cluster's ops keep it: each segment's
batch of facts with where it was heard (`Mention`, `Batch`), and what a person changed since (a
`Correction` of a line, an `EntityMerge` of two names, a `VoiceName` for one voice of a
session). Plain data."""

from __future__ import annotations

from dataclasses import dataclass

from streamre.triplets import Triplet


@dataclass(frozen=True)
class Mention:
    """Where a batch of triplets was heard: which session's which segment, said by whom, and
    the sentence as the model heard it."""
    session_id: str
    segment_id: int
    speaker: str | None = None
    continues_previous: bool = False  # the segment continues a forced split
    text: str = ""
    source: str = "speech"  # or "text": a typed chat line or note
    voice: int | None = None  # which of the session's voices said it (None: not told apart)

    @property
    def segment_ref(self) -> str:
        return f"{self.session_id}/{self.segment_id}"

    def to_json(self) -> dict:
        data = {"session_id": self.session_id, "segment_id": self.segment_id,
                "speaker": self.speaker, "continues_previous": self.continues_previous,
                "text": self.text, "source": self.source}
        if self.voice is not None:
            data["voice"] = self.voice
        return data

    def evidence(self) -> dict:
        return {"session_id": self.session_id, "segment_id": self.segment_id, "text": self.text,
                "source": self.source}


@dataclass(frozen=True)
class Correction:
    """A person's fix of one line: `mention` is the line as corrected (its text as meant), and
    `triplets` the facts read from that text; `heard` is the line as it was heard. `at` is
    the meeting time the fix was made."""
    mention: Mention
    triplets: tuple[Triplet, ...]
    at: float
    by: str | None = None
    heard: str = ""

    def to_json(self) -> dict:
        return {"kind": "correction", "mention": self.mention.to_json(), "at": self.at,
                "by": self.by, "heard": self.heard,
                "triplets": [t.to_row() for t in self.triplets]}


@dataclass(frozen=True)
class EntityMerge:
    """A person says the entity named `source` is `into` (a rename when no node is `into`)."""
    source: str
    into: str
    at: float
    by: str | None = None

    def to_json(self) -> dict:
        return {"kind": "merge", "from": self.source, "into": self.into, "at": self.at,
                "by": self.by}


@dataclass(frozen=True)
class VoiceName:
    """A person names one voice the server told apart in a session: its lines, past and
    future, are `speaker`'s."""
    session_id: str
    voice: int
    speaker: str
    at: float
    by: str | None = None

    def to_json(self) -> dict:
        return {"kind": "voice", "session_id": self.session_id, "voice": self.voice,
                "speaker": self.speaker, "at": self.at, "by": self.by}


Change = Correction | EntityMerge | VoiceName


def change_from_json(data: dict) -> Change:
    """A correction, merge or voice's name from its `to_json`; KeyError, TypeError or
    ValueError if it is not one."""
    if data["kind"] == "correction":
        return Correction(Mention(**data["mention"]),
                          tuple(Triplet.from_row(row) for row in data["triplets"]),
                          float(data["at"]), data.get("by"), str(data.get("heard", "")))
    if data["kind"] == "merge":
        return EntityMerge(str(data["from"]), str(data["into"]), float(data["at"]),
                           data.get("by"))
    if data["kind"] == "voice":
        if not isinstance(data["voice"], int) or not isinstance(data["speaker"], str):
            raise ValueError("a voice's name needs an integer voice and a speaker")
        return VoiceName(str(data["session_id"]), data["voice"], data["speaker"],
                         float(data["at"]), data.get("by"))
    raise ValueError(f"unknown change {data['kind']!r}")


@dataclass(frozen=True)
class Batch:
    """One segment's facts as they were heard (or typed)."""
    triplets: tuple[Triplet, ...]
    mention: Mention
    at: float
