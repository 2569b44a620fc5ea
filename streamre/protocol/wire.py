"""PROTOCOL.md's constants (version, encodings, the room-name rule, close codes) and a builder
for every message either side sends, so the server, the CLI, the tests and the benchmarks all
write the same JSON."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from streamre import SAMPLE_RATE
from streamre.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, Segment, SpeechEnd, SpeechStart
from streamre.room_name import ROOM_NAME, ROOM_RULE, valid_room  # noqa: F401 (part of the wire)

PROTOCOL_VERSION = 1
ENCODINGS = ("pcm_s16le",)
STREAM_PATH = "/v1/stream"
MAX_SPEAKER_CHARS = 128
MAX_JSON_DEPTH = 32  # nesting of arrays and objects in a client's message
MAX_FRAME_SECONDS = 1.0  # audio in one binary frame (PROTOCOL.md: 10 ms to 1 s)


class Role(StrEnum):
    """What a session is once it has sent `start` (a producer of audio) or `subscribe` (a
    viewer); its value is the word `ready.role` and the metrics' `role` label carry."""
    PRODUCER = "producer"
    VIEWER = "viewer"


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down
    POLICY_VIOLATION = 1008  # a refused handshake (origin) when HTTP cannot answer it
    MESSAGE_TOO_BIG = 1009  # sent by the WebSocket layer past max_message_bytes
    SERVER_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # the server is full
    PROTOCOL_VIOLATION = 4400


def is_int(value: Any) -> bool:
    """An integer in the JSON sense: `true` and `1.0` are not."""
    return isinstance(value, int) and not isinstance(value, bool)


# -- messages a client sends ------------------------------------------------------------------

def start_message(room: str = "default", sample_rate: int = SAMPLE_RATE,
                  speaker: str | None = None, **extra: Any) -> dict:
    message = {"type": "start", "protocol": PROTOCOL_VERSION, "room": room,
               "sample_rate": sample_rate, "encoding": ENCODINGS[0], "channels": 1, **extra}
    if speaker is not None:
        message["speaker"] = speaker
    return message


def subscribe_message(room: str = "default", history: bool = False) -> dict:
    message = {"type": "subscribe", "room": room}
    if history:
        message["history"] = True
    return message


def stop_message() -> dict:
    return {"type": "stop"}


def ping_message() -> dict:
    return {"type": "ping"}


# -- messages the server sends ----------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    """What `ready` tells a client about the server's limits."""
    max_message_bytes: int
    max_utterance_s: float
    max_rooms: int = 16  # rooms one session may join over its life
    max_text_chars: int = 5000  # in one `text` message
    text_per_minute: int = 60  # `text` messages a session may send after a burst (0: no text)

    def to_json(self) -> dict:
        return {"max_message_bytes": self.max_message_bytes,
                "min_sample_rate": MIN_SAMPLE_RATE, "max_sample_rate": MAX_SAMPLE_RATE,
                "encodings": list(ENCODINGS), "max_utterance_s": self.max_utterance_s,
                "max_rooms": self.max_rooms, "max_text_chars": self.max_text_chars,
                "text_per_minute": self.text_per_minute}


def ready_message(session_id: str, room: str, role: Role, limits: Limits) -> dict:
    return {"type": "ready", "session_id": session_id, "room": room,
            "protocol": PROTOCOL_VERSION, "role": str(role), "limits": limits.to_json()}


def error_message(code: str, message: str) -> dict:
    return {"type": "error", "code": code, "message": message}


def warning_message(code: str, message: str, **extra: Any) -> dict:
    return {"type": "warning", "code": code, "message": message, **extra}


def vad_message(event: SpeechStart | SpeechEnd) -> dict:
    kind = "speech_start" if isinstance(event, SpeechStart) else "speech_end"
    return {"type": "vad", "event": kind, "t": round(event.t, 3)}


def segment_message(segment: Segment) -> dict:
    return {"type": "segment", "segment_id": segment.index, "start": round(segment.start_s, 3),
            "end": round(segment.end_s, 3), "forced_split": segment.forced_split}


def partial_message(session_id: str, speaker: str | None, start_s: float, text: str) -> dict:
    """What was heard so far of an utterance still being spoken (a live caption): to every
    session of the room, replaced by the next partial and, in the end, by its final line."""
    return {"type": "partial", "session_id": session_id, "speaker": speaker,
            "start": round(start_s, 3), "text": text}


@dataclass(frozen=True)
class Failed:
    """Why a segment or a typed sentence has no facts: the `error` code of its `triplets`
    answer (`inference_failed`, `journal_failed`) and a message for people."""
    error: str
    message: str

    def fields(self) -> dict:
        """The answer's fields in place of its facts and timing."""
        return {"triplets": [], "error": self.error, "message": self.message}


def triplets_message(segment: Segment, text: str, triplets: list[dict], **timing: Any) -> dict:
    """A segment's answer; `timing` is latency_ms, queue_ms, infer_ms and batch_size, or
    error and message when inference failed."""
    return {"type": "triplets", "segment_id": segment.index, "start": round(segment.start_s, 3),
            "end": round(segment.end_s, 3), "source": "speech", "text": text,
            "triplets": triplets, **timing}


def text_triplets_message(item_id: int, text: str, triplets: list[dict], **timing: Any) -> dict:
    """A written sentence's answer: like a segment's, with source "text" and no start or end."""
    return {"type": "triplets", "segment_id": item_id, "source": "text", "text": text,
            "triplets": triplets, **timing}


def text_message(text: str, speaker: str | None = None) -> dict:
    message = {"type": "text", "text": text}
    if speaker is not None:
        message["speaker"] = speaker
    return message


def pong_message() -> dict:
    return {"type": "pong"}


def done_message() -> dict:
    return {"type": "done"}
