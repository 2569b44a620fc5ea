"""One session's state machine: text and audio frames in, `Action`s out.

`SessionProtocol` owns the session's audio input and VAD segmenter; the asyncio shell
(`streamre.server.session`) carries its actions out, and the tests drive it with no server and
no model.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

from streamre import SAMPLE_RATE
from streamre.audio import (MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioInput, Dropped, Segment,
                            SpeechEnd, SpeechStart, VadConfig, VadSegmenter)
from streamre.audio.partials import NO_PARTIALS, Partial, PartialPacer, PartialPacing
from streamre.protocol.actions import (Action, Admit, Busy, Close, DropSegment, Finish,
                                       FindTurns, HearPartial, Infer, InferText, JoinRoom,
                                       Reply, SendHistory, SendSnapshot)
from streamre.hearing.names import BadContext, check_context
from streamre.hearing.vocabulary import BadVocabulary, check_vocabulary
from streamre.protocol.parsing import TEXT_BURST, RateLimit, Refusal, note, parse, room_name
from streamre.protocol.wire import (ENCODINGS, MAX_FRAME_SECONDS, MAX_SPEAKER_CHARS,
                                    PROTOCOL_VERSION, CloseCode, Limits, Role, error_message, is_int,
                                    pong_message, ready_message, segment_message, vad_message)

__all__ = ["Action", "Admit", "Busy", "Close", "DropSegment", "Finish", "FindTurns",
           "HearPartial", "Infer", "InferText", "JoinRoom", "Reply", "SendHistory",
           "SendSnapshot", "SessionProtocol"]


class SessionProtocol:
    """One WebSocket session as PROTOCOL.md describes it, frames in and actions out.

    Args:
        session_id: the id `ready` announces.
        vad: the settings of the producer's VAD segmenter.
        limits: what `ready` announces; `max_rooms` is enforced here.
        admit: the server's say on capacity (producers, viewers, rooms); everyone by default.
        clock: monotonic seconds, for the text rate (tests pass their own).
        partials: how often a producer's open utterance is heard for captions (none by default).
        turns_from: segments of at least this many samples are looked at for a change of voice
            inside them (`FindTurns`) before they are numbered and heard; None: never.

    A session is nobody until `start` (a producer) or `subscribe` (a viewer). A bad message
    gets an `error` and the session goes on; a bad `start` or audio before it also closes the
    session with 4400, and a `start` or a first `subscribe` the server has no room for closes
    it with 1013. Nothing here raises on any input.
    """

    def __init__(self, session_id: str, vad: VadConfig, limits: Limits,
                 admit: Admit = lambda role, room: None,
                 clock: Callable[[], float] = time.monotonic,
                 partials: PartialPacing = NO_PARTIALS, turns_from: int | None = None) -> None:
        self.session_id = session_id
        self.turns_from = turns_from
        self.vad = vad
        self.partials = partials
        self.limits = limits
        self.admit = admit
        self.rooms_joined: set[str] = set()
        self._clock = clock
        self._text_rate = RateLimit(limits.text_per_minute / 60, TEXT_BURST)
        self._items = 0  # segment ids given out, to audio segments and text sentences alike
        self.role: Role | None = None
        self.room_name: str | None = None  # the room it is in (the server holds the Room)
        self.speaker: str | None = None
        self.sample_rate = SAMPLE_RATE
        self.finishing = False  # `stop` came, or the shell is ending the stream
        self.samples_heard = 0  # 16 kHz samples accepted into the stream
        self._audio: AudioInput | None = None
        self._segmenter: VadSegmenter | None = None
        self._pacer: PartialPacer | None = None

    def receive_text(self, text: str) -> list[Action]:
        try:
            return self._on_message(parse(text))
        except Refusal as e:
            return self._refuse(e)

    def receive_audio(self, data: bytes) -> list[Action]:
        if self.role != Role.PRODUCER:
            return self._refuse(Refusal("audio_before_start",
                                         "send {'type':'start', ...} before any audio", True))
        if self.finishing:
            return []  # audio after stop or during shutdown is not part of the stream
        most = int(2 * self.sample_rate * MAX_FRAME_SECONDS)  # PCM16 bytes
        if len(data) > most:
            return self._refuse(Refusal(
                "frame_too_long", f"a binary frame carries at most {MAX_FRAME_SECONDS:g} s of "
                f"audio ({most} bytes at this rate); this one was not used"))
        samples = self._audio.feed(data)
        self.samples_heard += len(samples)
        actions = self._events(self._segmenter.feed(samples))
        due = self._pacer.due(self._segmenter.open_utterance)
        if due is not None:
            start, end, at_pause = due
            actions.append(HearPartial(Partial(start, end, self._segmenter.audio(start, end),
                                               at_pause)))
        return actions

    def handshake_expired(self, seconds: float) -> list[Action]:
        """The handshake window is over: a session that is still nobody is closed (4400)."""
        if self.role is not None:
            return []
        return self._refuse(Refusal("handshake_timeout", f"send 'start' or 'subscribe' within "
                                     f"{seconds:g} s of connecting", True))

    def end_of_stream(self) -> list[Action]:
        """The stream is over (`stop`, a disconnect, a shutdown): the open utterance's segment.
        Later audio is ignored; call once."""
        self.finishing = True
        if self.role != Role.PRODUCER:
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
            if self.role != Role.PRODUCER:
                raise Refusal("not_streaming", "'stop' ends an audio stream; none was started")
            if self.finishing:
                return []
            self.finishing = True  # later audio is not part of the stream
            return [Finish()]
        if kind == "ping":
            return [Reply(pong_message())]
        if kind == "text":
            return self._text(message)
        raise Refusal("unknown_type", f"unknown message type {kind[:64]!r}")  # not echoed whole

    def _start(self, message: dict) -> list[Action]:
        if self.role is not None:
            raise Refusal("already_started", f"this session is already a {self.role}")
        protocol = message.get("protocol", PROTOCOL_VERSION)
        if not is_int(protocol) or protocol != PROTOCOL_VERSION:
            raise Refusal("unsupported_protocol",
                           f"protocol {protocol!r} not supported; this server speaks 1", True)
        encoding = message.get("encoding", ENCODINGS[0])
        if encoding not in ENCODINGS:
            raise Refusal("unsupported_encoding",
                           f"encoding {encoding!r} not supported; use pcm_s16le", True)
        channels = message.get("channels", 1)
        if not is_int(channels) or channels != 1:
            raise Refusal("unsupported_channels", "only mono audio (channels: 1)", True)
        rate = message.get("sample_rate", SAMPLE_RATE)
        if not is_int(rate) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise Refusal("bad_sample_rate", f"sample_rate must be an integer from "
                           f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}", True)
        speaker = message.get("speaker")
        if speaker is not None and (not isinstance(speaker, str)
                                    or len(speaker) > MAX_SPEAKER_CHARS):
            raise Refusal("bad_speaker", f"speaker must be a string of at most "
                           f"{MAX_SPEAKER_CHARS} chars", True)
        vocabulary = message.get("vocabulary", [])
        try:
            vocabulary = check_vocabulary(vocabulary)
        except BadVocabulary as e:
            raise Refusal("bad_vocabulary", f"vocabulary: {e}", True) from None
        context = message.get("context")
        if context is not None:
            if not isinstance(context, str):
                raise Refusal("bad_context", "context must be a string of text", True)
            try:
                context = check_context(context)
            except BadContext as e:
                raise Refusal("bad_context", f"context: {e}", True) from None
        room = room_name(message, fatal=True)
        self._check_admission(Role.PRODUCER, room, fatal=True)
        self.role, self.speaker, self.sample_rate = Role.PRODUCER, speaker, rate
        self._audio = AudioInput(rate)
        self._segmenter = VadSegmenter(self.vad)
        self._pacer = PartialPacer(self.partials, self.vad.min_voiced_samples)
        return self._join(room, vocabulary, context)

    def _subscribe(self, message: dict) -> list[Action]:
        room = room_name(message, fatal=False)
        history = message.get("history", False)
        if not isinstance(history, bool):
            raise Refusal("bad_history", "history must be true or false")
        if self.role == Role.PRODUCER and room != self.room_name:
            raise Refusal("room_mismatch", "a producer can only resync its own room")
        later = [SendHistory()] if history else []
        if room == self.room_name:
            return [SendSnapshot(), *later]  # a resync: a fresh snapshot (and the transcript)
        if room not in self.rooms_joined and len(self.rooms_joined) >= self.limits.max_rooms:
            raise Refusal("too_many_rooms", f"a session may join at most "
                           f"{self.limits.max_rooms} rooms; open another connection")
        # A viewer already in a room keeps it when refused another; a newcomer is closed.
        self._check_admission(None if self.role else Role.VIEWER, room, fatal=self.role is None)
        if self.role is None:
            self.role = Role.VIEWER
        return self._join(room) + later

    def _text(self, message: dict) -> list[Action]:
        if self.limits.text_per_minute == 0:
            raise Refusal("text_unavailable", "this server takes no text (it has no text model)")
        if self.room_name is None:
            raise Refusal("not_in_room", "send 'start' or 'subscribe' before 'text'")
        sentences, speaker = note(message, self.limits.max_text_chars, self.speaker)
        if not self._text_rate.take(self._clock()):
            raise Refusal("text_rate", f"at most {self.limits.text_per_minute} text messages a "
                          "minute; this one was not used")
        return [InferText(self._next_item(), sentence, speaker) for sentence in sentences]

    def _next_item(self) -> int:
        self._items += 1
        return self._items - 1

    def _check_admission(self, new_role: str | None, room: str, fatal: bool) -> None:
        busy = self.admit(new_role, room)
        if busy is not None:
            raise Refusal(busy.code, busy.message, fatal, CloseCode.TRY_AGAIN_LATER)

    def _join(self, room: str, vocabulary: tuple[str, ...] = (),
              context: str | None = None) -> list[Action]:
        self.room_name = room
        self.rooms_joined.add(room)
        return [JoinRoom(room, vocabulary, context),
                Reply(ready_message(self.session_id, room, self.role, self.limits)),
                SendSnapshot()]

    def _events(self, events) -> list[Action]:
        actions: list[Action] = []
        for event in events:
            if isinstance(event, (SpeechStart, SpeechEnd)):
                actions.append(Reply(vad_message(event)))
            elif isinstance(event, Dropped):
                actions.append(DropSegment())
            elif isinstance(event, Segment):
                if self.turns_from is not None and len(event.audio) >= self.turns_from:
                    actions.append(FindTurns(event))
                else:
                    actions += self._numbered(event)
        return actions

    def turns_found(self, segment: Segment, cuts: list[int]) -> list[Action]:
        """A `FindTurns` segment's pieces, cut at `cuts` (samples into it, ascending; none:
        it is one voice's), each numbered, announced and heard as a segment of its own."""
        return [action for piece in segment.pieces(cuts) for action in self._numbered(piece)]

    def _numbered(self, segment: Segment) -> list[Action]:
        segment = replace(segment, index=self._next_item())  # one id space with text
        return [Reply(segment_message(segment)), Infer(segment)]

    def _refuse(self, refusal: Refusal) -> list[Action]:
        actions: list[Action] = [Reply(error_message(refusal.code, str(refusal)))]
        if refusal.fatal:
            actions.append(Close(refusal.close_code, refusal.code))
        return actions
