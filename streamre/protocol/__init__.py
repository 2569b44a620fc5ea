"""The wire contract of PROTOCOL.md in one place, with no I/O.

- `wire`: the version, encodings, room-name rule and close codes, and a builder for every
  message either side sends.
- `session`: `SessionProtocol`, one session's state machine. Text and audio frames go in;
  actions come out (reply, join a room, send a snapshot, find a segment's turns, infer a
  segment, hear a partial, finish, close).
"""

from streamre.protocol.session import (Action, Admit, Busy, Close, DropSegment, Finish,
                                       FindTurns, HearPartial, Infer, InferText, JoinRoom, Reply,
                                       SendHistory, SendSnapshot, SessionProtocol)
from streamre.protocol.wire import (ENCODINGS, PROTOCOL_VERSION, ROOM_NAME, STREAM_PATH, CloseCode,
                                    Failed, Limits, Role, done_message, error_message,
                                    partial_message, ping_message,
                                    pong_message, ready_message, segment_message, start_message,
                                    stop_message, subscribe_message, text_message,
                                    text_triplets_message, triplets_message, vad_message,
                                    valid_room, warning_message)

__all__ = [
    "Action", "Admit", "Busy", "Close", "DropSegment", "Finish", "FindTurns", "HearPartial",
    "Infer", "InferText", "partial_message",
    "JoinRoom", "Reply", "SendHistory", "SendSnapshot", "SessionProtocol", "ENCODINGS", "PROTOCOL_VERSION",
    "ROOM_NAME", "STREAM_PATH", "CloseCode", "Failed", "Limits", "Role", "done_message", "error_message",
    "ping_message", "pong_message", "ready_message", "segment_message", "start_message",
    "stop_message", "subscribe_message", "text_message", "text_triplets_message",
    "triplets_message", "vad_message", "valid_room", "warning_message",
]
