"""An op: one segment (or typed sentence) a room was told, with the facts read from it, as
the instance that heard it (its *origin*) made it; what the instances of a cluster (`serve
--cluster`, streamre.cluster) send each other and journal. It is named by (origin, seq): `seq`
counts the origin's ops in that room from 1, so a receiver sees at once what it already has
(QoS 1 redelivers) and what it lacks. `key` is the origin's wall clock when it made the op;
(key, origin, seq) is the one total order every instance replays a room's ops in.

An origin is the server's id plus a random tag kept in its data dir, so an instance whose
data was wiped never reuses its old sequence numbers.

Added with corrections: an op may carry a `change` instead of a segment, a person's correction
of a line, merge of two entities or name for a voice (`streamre.graph.entries.Change`). Such an
op is of version 2, so an instance too old to know changes refuses it (counted as a bad op)
rather than taking it for an empty segment. Its segment fields name the corrected line (a
voice's name, its session; a merge's, none). A segment's op carries its `voice` when the
server told voices apart (an older instance reads past it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from streamre.graph.entries import Change, Correction, Mention, VoiceName, change_from_json
from streamre.graph.transcript import Said
from streamre.room_name import valid_room
from streamre.triplets import Triplet

OP_VERSION = 1
CHANGE_OP_VERSION = 2  # an op that carries a change


class BadOp(ValueError):
    """A payload on an ops topic that is not an op (logged and counted, never merged)."""


@dataclass(frozen=True)
class Op:
    room: str
    origin: str
    seq: int
    key: float  # the origin's wall clock when it made the op
    session_id: str
    segment_id: int
    speaker: str | None
    source: str  # "speech" or "text"
    continues_previous: bool
    start: float | None  # seconds of its stream (speech only)
    end: float | None
    time: float  # meeting time it began, Unix seconds
    at: float  # meeting time of its facts
    text: str
    triplets: tuple[Triplet, ...]
    change: Change | None = None
    voice: int | None = None

    @property
    def id(self) -> tuple[str, int]:
        return self.origin, self.seq

    @property
    def order(self) -> tuple[float, str, int]:
        return self.key, self.origin, self.seq

    def mention(self) -> Mention:
        return Mention(self.session_id, self.segment_id, self.speaker, self.continues_previous,
                       self.text, self.source, self.voice)

    def said(self, edges: list[str], speaker: str | None) -> Said:
        """Its transcript line, stating `edges`, said by `speaker` (its voice's name, if
        given one)."""
        return Said(self.session_id, self.segment_id, speaker, self.source, self.start,
                    self.end, self.time, self.text, tuple(edges), voice=self.voice)

    def to_json(self) -> dict:
        if self.change is not None:
            return {"v": CHANGE_OP_VERSION, "room": self.room, "origin": self.origin,
                    "seq": self.seq, "key": self.key, "change": self.change.to_json()}
        return {"v": OP_VERSION, "room": self.room, "origin": self.origin, "seq": self.seq,
                "key": self.key, "session_id": self.session_id, "segment_id": self.segment_id,
                "speaker": self.speaker, "source": self.source,
                "continues_previous": self.continues_previous, "start": self.start,
                "end": self.end, "time": self.time, "at": self.at, "text": self.text,
                "triplets": [t.to_row() for t in self.triplets],
                **({"voice": self.voice} if self.voice is not None else {})}

    @classmethod
    def from_json(cls, data: object) -> Op:
        """An op from its JSON; `BadOp` says what is wrong with one that is not."""
        try:
            if isinstance(data, dict) and data.get("v") == CHANGE_OP_VERSION:
                op = change_op(data["room"], data["origin"], data["seq"], _number(data["key"]),
                               change_from_json(data["change"]))
            elif not isinstance(data, dict) or data.get("v") != OP_VERSION:
                raise BadOp(f"not an op of version {OP_VERSION} or {CHANGE_OP_VERSION}")
            else:
                op = cls(data["room"], data["origin"], data["seq"], _number(data["key"]),
                         data["session_id"], data["segment_id"], data.get("speaker"),
                         data["source"], bool(data.get("continues_previous", False)),
                         _number(data.get("start"), True), _number(data.get("end"), True),
                         _number(data["time"]), _number(data["at"]), data.get("text", ""),
                         tuple(_triplet(row) for row in data.get("triplets", [])),
                         voice=data.get("voice"))
        except (KeyError, TypeError, ValueError) as e:
            raise BadOp(f"bad op: {e}") from None
        if not (valid_room(op.room) and valid_room(op.origin)):
            raise BadOp("bad op: room or origin is not a valid name")
        if not (isinstance(op.seq, int) and op.seq >= 1 and isinstance(op.segment_id, int)
                and isinstance(op.session_id, str) and isinstance(op.text, str)
                and (op.speaker is None or isinstance(op.speaker, str))
                and (op.voice is None or (isinstance(op.voice, int) and op.voice >= 1))
                and op.source in ("speech", "text")):
            raise BadOp("bad op: a field has the wrong type")
        return op


def change_op(room: str, origin: str, seq: int, key: float, change: Change) -> Op:
    """The op of a change; its segment fields name the corrected line, or the named voice's
    session."""
    mention = change.mention if isinstance(change, Correction) else \
        Mention(change.session_id, 0) if isinstance(change, VoiceName) else Mention("", 0)
    return Op(room, origin, seq, key, mention.session_id, mention.segment_id, mention.speaker,
              mention.source, False, None, None, change.at, change.at, "", (), change)


def _triplet(row: list) -> Triplet:
    triplet = Triplet.from_row(row)
    _number(triplet.confidence)  # finite
    return triplet


def _number(value: object, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return float(value)
