"""The wire contract of PROTOCOL.md in one place, with no I/O.

- The constants: version, encodings, the room-name rule, the close codes.
- A builder for every message either side sends, so the server, the CLI, the tests and the
  benchmarks all write the same JSON.
- `SessionProtocol`: one session's state machine. Text and audio frames go in; `Action`s come
  out (reply, join a room, send a snapshot, infer a segment, finish, close). It owns the
  session's audio input and VAD segmenter; the asyncio shell (`streamre.server.session`) carries
  the actions out, and the tests drive it with no server and no model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Union

from streamre import SAMPLE_RATE
from streamre.audio import (MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioInput, Dropped, Segment,
                            SpeechEnd, SpeechStart, VadConfig, VadSegmenter)

PROTOCOL_VERSION = 1
ENCODINGS = ("pcm_s16le",)
STREAM_PATH = "/v1/stream"
ROOM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # also a valid MQTT topic level
ROOM_RULE = ("room must be 1-64 characters: letters, digits, '_', '.', '-' "
             "(starting with a letter or digit)")
MAX_SPEAKER_CHARS = 128


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down
    SERVER_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # the server is full
    PROTOCOL_VIOLATION = 4400


def valid_room(name: Any) -> bool:
    return isinstance(name, str) and ROOM_NAME.match(name) is not None


# -- messages a client sends ------------------------------------------------------------------

def start_message(room: str = "default", sample_rate: int = SAMPLE_RATE,
                  speaker: str | None = None, **extra: Any) -> dict:
    message = {"type": "start", "protocol": PROTOCOL_VERSION, "room": room,
               "sample_rate": sample_rate, "encoding": ENCODINGS[0], "channels": 1, **extra}
    if speaker is not None:
        message["speaker"] = speaker
    return message


def subscribe_message(room: str = "default") -> dict:
    return {"type": "subscribe", "room": room}


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

    def to_json(self) -> dict:
        return {"max_message_bytes": self.max_message_bytes,
                "min_sample_rate": MIN_SAMPLE_RATE, "max_sample_rate": MAX_SAMPLE_RATE,
                "encodings": list(ENCODINGS), "max_utterance_s": self.max_utterance_s}


def ready_message(session_id: str, room: str, role: str, limits: Limits) -> dict:
    return {"type": "ready", "session_id": session_id, "room": room,
            "protocol": PROTOCOL_VERSION, "role": role, "limits": limits.to_json()}


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


def triplets_message(segment: Segment, text: str, triplets: list[dict], **timing: Any) -> dict:
    """A segment's answer; `timing` is latency_ms, queue_ms, infer_ms and batch_size, or
    error and message when inference failed."""
    return {"type": "triplets", "segment_id": segment.index, "start": round(segment.start_s, 3),
            "end": round(segment.end_s, 3), "source": "speech", "text": text,
            "triplets": triplets, **timing}


def pong_message() -> dict:
    return {"type": "pong"}


def done_message() -> dict:
    return {"type": "done"}


# -- one session's state machine --------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    """Send this message to the session's own client."""
    message: dict


@dataclass(frozen=True)
class JoinRoom:
    """Leave the current room (if any), join this one; a `Reply(ready)` and a
    `SendSnapshot` follow."""
    room: str


@dataclass(frozen=True)
class SendSnapshot:
    """Send the room graph's current snapshot (after `ready`, or as a viewer's resync)."""


@dataclass(frozen=True)
class Infer:
    """A closed segment for the model; its `triplets` answer is the shell's to send."""
    segment: Segment


@dataclass(frozen=True)
class DropSegment:
    """The segmenter dropped an utterance too short to be speech (counted, not sent)."""


@dataclass(frozen=True)
class Finish:
    """`stop`: flush (`end_of_stream`), answer every segment, send `done`, close 1000."""


@dataclass(frozen=True)
class Close:
    """Close the connection with this code, after the replies before it are written."""
    code: CloseCode
    reason: str


Action = Union[Reply, JoinRoom, SendSnapshot, Infer, DropSegment, Finish, Close]


class _Refusal(Exception):
    """A message the protocol answers with `error`; with `fatal`, then close 4400."""

    def __init__(self, code: str, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.code, self.fatal = code, fatal


class SessionProtocol:
    """One WebSocket session as PROTOCOL.md describes it, frames in and actions out.

    Args:
        session_id: the id `ready` announces.
        vad: the settings of the producer's VAD segmenter.
        limits: what `ready` announces.

    A session is nobody until `start` (a producer) or `subscribe` (a viewer). A bad message
    gets an `error` and the session goes on; a bad `start` or audio before it also closes the
    session with 4400. Nothing here raises on any input.
    """

    def __init__(self, session_id: str, vad: VadConfig, limits: Limits) -> None:
        self.session_id = session_id
        self.vad = vad
        self.limits = limits
        self.role: str | None = None  # "producer" | "viewer"
        self.room: str | None = None
        self.speaker: str | None = None
        self.sample_rate = SAMPLE_RATE
        self.finishing = False  # `stop` came, or the shell is ending the stream
        self._audio: AudioInput | None = None
        self._segmenter: VadSegmenter | None = None

    def receive_text(self, text: str) -> list[Action]:
        try:
            return self._on_message(_parse(text))
        except _Refusal as e:
            return self._refuse(e)

    def receive_audio(self, data: bytes) -> list[Action]:
        if self.role != "producer":
            return self._refuse(_Refusal("audio_before_start",
                                         "send {'type':'start', ...} before any audio", True))
        if self.finishing:
            return []  # audio after stop or during shutdown is not part of the stream
        return self._events(self._segmenter.feed(self._audio.feed(data)))

    def end_of_stream(self) -> list[Action]:
        """The stream is over (`stop`, a disconnect, a shutdown): the open utterance's segment.
        Later audio is ignored; call once."""
        self.finishing = True
        if self.role != "producer":
            return []
        tail = self._audio.flush()
        return self._events(self._segmenter.feed(tail) + self._segmenter.flush())

    # -- messages ---------------------------------------------------------------------------

    def _on_message(self, message: dict) -> list[Action]:
        kind = message["type"]
        if kind == "start":
            return self._start(message)
        if kind == "subscribe":
            return self._subscribe(message)
        if kind == "stop":
            if self.role != "producer":
                raise _Refusal("not_streaming", "'stop' ends an audio stream; none was started")
            return [] if self.finishing else [Finish()]
        if kind == "ping":
            return [Reply(pong_message())]
        raise _Refusal("unknown_type", f"unknown message type {kind!r}")

    def _start(self, message: dict) -> list[Action]:
        if self.role is not None:
            raise _Refusal("already_started", f"this session is already a {self.role}")
        protocol = message.get("protocol", PROTOCOL_VERSION)
        if protocol != PROTOCOL_VERSION:
            raise _Refusal("unsupported_protocol",
                           f"protocol {protocol!r} not supported; this server speaks 1", True)
        encoding = message.get("encoding", ENCODINGS[0])
        if encoding not in ENCODINGS:
            raise _Refusal("unsupported_encoding",
                           f"encoding {encoding!r} not supported; use pcm_s16le", True)
        if message.get("channels", 1) != 1:
            raise _Refusal("unsupported_channels", "only mono audio (channels: 1)", True)
        rate = message.get("sample_rate", SAMPLE_RATE)
        if not isinstance(rate, int) or isinstance(rate, bool) or \
                not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise _Refusal("bad_sample_rate", f"sample_rate must be an integer from "
                           f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}", True)
        speaker = message.get("speaker")
        if speaker is not None and (not isinstance(speaker, str)
                                    or len(speaker) > MAX_SPEAKER_CHARS):
            raise _Refusal("bad_speaker", f"speaker must be a string of at most "
                           f"{MAX_SPEAKER_CHARS} chars", True)
        room = _room_name(message, fatal=True)
        self.role, self.speaker, self.sample_rate = "producer", speaker, rate
        self._audio = AudioInput(rate)
        self._segmenter = VadSegmenter(self.vad)
        return self._join(room)

    def _subscribe(self, message: dict) -> list[Action]:
        room = _room_name(message, fatal=False)
        if self.role == "producer" and room != self.room:
            raise _Refusal("room_mismatch", "a producer can only resync its own room")
        if self.role is None:
            self.role = "viewer"
        if room == self.room:
            return [SendSnapshot()]  # a resync: a fresh snapshot is the whole answer
        return self._join(room)

    def _join(self, room: str) -> list[Action]:
        self.room = room
        return [JoinRoom(room), Reply(ready_message(self.session_id, room, self.role, self.limits)),
                SendSnapshot()]

    def _events(self, events) -> list[Action]:
        actions: list[Action] = []
        for event in events:
            if isinstance(event, (SpeechStart, SpeechEnd)):
                actions.append(Reply(vad_message(event)))
            elif isinstance(event, Dropped):
                actions.append(DropSegment())
            elif isinstance(event, Segment):
                actions += [Reply(segment_message(event)), Infer(event)]
        return actions

    def _refuse(self, refusal: _Refusal) -> list[Action]:
        actions: list[Action] = [Reply(error_message(refusal.code, str(refusal)))]
        if refusal.fatal:
            actions.append(Close(CloseCode.PROTOCOL_VIOLATION, refusal.code))
        return actions


def _parse(text: str) -> dict:
    try:
        message = json.loads(text)
    except ValueError:
        raise _Refusal("bad_json", "text frames must be JSON objects") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise _Refusal("bad_message", "a message must be a JSON object with a string 'type'")
    return message


def _room_name(message: dict, fatal: bool) -> str:
    room = message.get("room", "default")
    if not valid_room(room):
        raise _Refusal("bad_room", ROOM_RULE, fatal)
    return room
