"""What `SessionProtocol` asks its shell to do, in order, and what the shell tells it about
the server's capacity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from streamre.audio import Segment
from streamre.audio.partials import Partial
from streamre.protocol.wire import CloseCode, Role


# What the shell is asked to do, in order.
@dataclass(frozen=True)
class Reply:
    message: dict  # to this session's own client


@dataclass(frozen=True)
class JoinRoom:
    room_name: str  # leave the current room, if any; `ready` and a snapshot follow
    vocabulary: tuple[str, ...] = ()  # phrases added to the room's vocabulary (`start`)
    context: str | None = None  # the meeting's context, replacing the room's (`start`)


@dataclass(frozen=True)
class SendSnapshot:
    """The room graph as it is now (after `ready`, or a viewer's resync)."""


@dataclass(frozen=True)
class SendHistory:
    """The room's transcript so far (`subscribe` with `history`), then each new line."""


@dataclass(frozen=True)
class Infer:
    segment: Segment  # for the model; its `triplets` answer is the shell's to send


@dataclass(frozen=True)
class FindTurns:
    """A closed segment long enough to hold two speakers: the shell finds where its voice
    changes and gives the cuts to `SessionProtocol.turns_found`, which numbers its pieces."""
    segment: Segment


@dataclass(frozen=True)
class HearPartial:
    """The open utterance so far, for a caption (`partial`); the shell may drop it."""
    partial: Partial


@dataclass(frozen=True)
class InferText:
    """A written sentence (from a `text` message) for the text extractor; its `triplets`
    answer (source "text") is the shell's to send."""
    item_id: int  # its segment_id: one counter with the session's audio segments
    sentence: str
    speaker: str | None


@dataclass(frozen=True)
class DropSegment:
    """An utterance too short to be speech: counted, not sent."""


@dataclass(frozen=True)
class Finish:
    """`stop`: flush (`end_of_stream`), answer every segment, send `done`, close 1000."""


@dataclass(frozen=True)
class Close:
    code: CloseCode  # after the replies before it are written
    reason: str


Action = Union[Reply, JoinRoom, SendSnapshot, SendHistory, Infer, FindTurns, HearPartial,
               InferText, DropSegment, Finish, Close]


@dataclass(frozen=True)
class Busy:
    """Why the server cannot take a `start` or `subscribe` now: its capacity, not a bad
    message (codes `server_full`, `too_many_rooms`)."""
    code: str
    message: str


# Asked before a session becomes a producer or viewer, or joins another room: the role it
# would take (None if it has one) and the room; None lets it in.
Admit = Callable[[Union[Role, None], str], Union[Busy, None]]
