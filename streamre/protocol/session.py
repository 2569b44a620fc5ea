"""One session's state machine: text and audio frames in, `Action`s out.

`SessionProtocol` owns the session's audio input and VAD segmenter; the asyncio shell
(`streamre.server.session`) carries its actions out, and the tests drive it with no server and
no model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Union

from streamre import SAMPLE_RATE
from streamre.audio import (MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioInput, Dropped, Segment,
                            SpeechEnd, SpeechStart, VadConfig, VadSegmenter)
from streamre.protocol.wire import (ENCODINGS, MAX_FRAME_SECONDS, MAX_JSON_DEPTH,
                                    MAX_SPEAKER_CHARS, PROTOCOL_VERSION, ROOM_RULE, CloseCode,
                                    Limits, error_message, is_int, pong_message, ready_message,
                                    segment_message, vad_message, valid_room)


# What the shell is asked to do, in order.
@dataclass(frozen=True)
class Reply:
    message: dict  # to this session's own client


@dataclass(frozen=True)
class JoinRoom:
    room: str  # leave the current room, if any; `ready` and a snapshot follow


@dataclass(frozen=True)
class SendSnapshot:
    """The room graph as it is now (after `ready`, or a viewer's resync)."""


@dataclass(frozen=True)
class Infer:
    segment: Segment  # for the model; its `triplets` answer is the shell's to send


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


Action = Union[Reply, JoinRoom, SendSnapshot, Infer, DropSegment, Finish, Close]


@dataclass(frozen=True)
class Busy:
    """Why the server cannot take a `start` or `subscribe` now: its capacity, not a bad
    message (codes `server_full`, `too_many_rooms`)."""
    code: str
    message: str


# Asked before a session becomes a producer or viewer, or joins another room: the role it
# would take (None if it has one) and the room; None lets it in.
Admit = Callable[[Union[str, None], str], Union[Busy, None]]


class _Refusal(Exception):
    """A message the protocol answers with `error`; with `fatal`, then a close (4400 unless
    said otherwise)."""

    def __init__(self, code: str, message: str, fatal: bool = False,
                 close_code: CloseCode = CloseCode.PROTOCOL_VIOLATION) -> None:
        super().__init__(message)
        self.code, self.fatal, self.close_code = code, fatal, close_code


class SessionProtocol:
    """One WebSocket session as PROTOCOL.md describes it, frames in and actions out.

    Args:
        session_id: the id `ready` announces.
        vad: the settings of the producer's VAD segmenter.
        limits: what `ready` announces; `max_rooms` is enforced here.
        admit: the server's say on capacity (producers, viewers, rooms); everyone by default.

    A session is nobody until `start` (a producer) or `subscribe` (a viewer). A bad message
    gets an `error` and the session goes on; a bad `start` or audio before it also closes the
    session with 4400, and a `start` or a first `subscribe` the server has no room for closes
    it with 1013. Nothing here raises on any input.
    """

    def __init__(self, session_id: str, vad: VadConfig, limits: Limits,
                 admit: Admit = lambda role, room: None) -> None:
        self.session_id = session_id
        self.vad = vad
        self.limits = limits
        self.admit = admit
        self.rooms_joined: set[str] = set()
        self.role: str | None = None  # "producer" | "viewer"
        self.room: str | None = None
        self.speaker: str | None = None
        self.sample_rate = SAMPLE_RATE
        self.finishing = False  # `stop` came, or the shell is ending the stream
        self.samples_heard = 0  # 16 kHz samples accepted into the stream
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
        most = int(2 * self.sample_rate * MAX_FRAME_SECONDS)  # PCM16 bytes
        if len(data) > most:
            return self._refuse(_Refusal(
                "frame_too_long", f"a binary frame carries at most {MAX_FRAME_SECONDS:g} s of "
                f"audio ({most} bytes at this rate); this one was not used"))
        samples = self._audio.feed(data)
        self.samples_heard += len(samples)
        return self._events(self._segmenter.feed(samples))

    def handshake_expired(self, seconds: float) -> list[Action]:
        """The handshake window is over: a session that is still nobody is closed (4400)."""
        if self.role is not None:
            return []
        return self._refuse(_Refusal("handshake_timeout", f"send 'start' or 'subscribe' within "
                                     f"{seconds:g} s of connecting", True))

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
            if self.finishing:
                return []
            self.finishing = True  # later audio is not part of the stream
            return [Finish()]
        if kind == "ping":
            return [Reply(pong_message())]
        raise _Refusal("unknown_type", f"unknown message type {kind[:64]!r}")  # not echoed whole

    def _start(self, message: dict) -> list[Action]:
        if self.role is not None:
            raise _Refusal("already_started", f"this session is already a {self.role}")
        protocol = message.get("protocol", PROTOCOL_VERSION)
        if not is_int(protocol) or protocol != PROTOCOL_VERSION:
            raise _Refusal("unsupported_protocol",
                           f"protocol {protocol!r} not supported; this server speaks 1", True)
        encoding = message.get("encoding", ENCODINGS[0])
        if encoding not in ENCODINGS:
            raise _Refusal("unsupported_encoding",
                           f"encoding {encoding!r} not supported; use pcm_s16le", True)
        channels = message.get("channels", 1)
        if not is_int(channels) or channels != 1:
            raise _Refusal("unsupported_channels", "only mono audio (channels: 1)", True)
        rate = message.get("sample_rate", SAMPLE_RATE)
        if not is_int(rate) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise _Refusal("bad_sample_rate", f"sample_rate must be an integer from "
                           f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}", True)
        speaker = message.get("speaker")
        if speaker is not None and (not isinstance(speaker, str)
                                    or len(speaker) > MAX_SPEAKER_CHARS):
            raise _Refusal("bad_speaker", f"speaker must be a string of at most "
                           f"{MAX_SPEAKER_CHARS} chars", True)
        room = _room_name(message, fatal=True)
        self._check_admission("producer", room, fatal=True)
        self.role, self.speaker, self.sample_rate = "producer", speaker, rate
        self._audio = AudioInput(rate)
        self._segmenter = VadSegmenter(self.vad)
        return self._join(room)

    def _subscribe(self, message: dict) -> list[Action]:
        room = _room_name(message, fatal=False)
        if self.role == "producer" and room != self.room:
            raise _Refusal("room_mismatch", "a producer can only resync its own room")
        if room == self.room:
            return [SendSnapshot()]  # a resync: a fresh snapshot is the whole answer
        if room not in self.rooms_joined and len(self.rooms_joined) >= self.limits.max_rooms:
            raise _Refusal("too_many_rooms", f"a session may join at most "
                           f"{self.limits.max_rooms} rooms; open another connection")
        # A viewer already in a room keeps it when refused another; a newcomer is closed.
        self._check_admission(None if self.role else "viewer", room, fatal=self.role is None)
        if self.role is None:
            self.role = "viewer"
        return self._join(room)

    def _check_admission(self, new_role: str | None, room: str, fatal: bool) -> None:
        busy = self.admit(new_role, room)
        if busy is not None:
            raise _Refusal(busy.code, busy.message, fatal, CloseCode.TRY_AGAIN_LATER)

    def _join(self, room: str) -> list[Action]:
        self.room = room
        self.rooms_joined.add(room)
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
            actions.append(Close(refusal.close_code, refusal.code))
        return actions


def _parse(text: str) -> dict:
    if _nested_deeper(text, MAX_JSON_DEPTH):
        raise _Refusal("bad_json", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
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


def _nested_deeper(text: str, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` deep (brackets inside strings do not
    count); the count first, so ordinary messages are not scanned."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False
