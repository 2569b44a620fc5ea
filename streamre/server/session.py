"""One WebSocket session: an audio producer or a viewer, speaking PROTOCOL.md.

The session turns client messages into calls on the pure cores (audio input, VAD segmenter,
room graph) and the inference engine, and their results into server messages on its outbox.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from streamre import SAMPLE_RATE
from streamre.audio import AudioInput, Dropped, Segment, SpeechEnd, SpeechStart, VadSegmenter
from streamre.audio.pcm import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from streamre.graph import Mention
from streamre.server.outbox import Outbox

if TYPE_CHECKING:
    from streamre.server.app import Room, StreamServer

log = logging.getLogger("streamre.session")

PROTOCOL_VERSION = 1
ENCODINGS = ("pcm_s16le",)
ROOM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # also a valid MQTT topic level
LAG_WARNING_EVERY_S = 5.0

# close codes of PROTOCOL.md
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_VIOLATION = 4400


class ProtocolViolation(Exception):
    """A message after which the session cannot go on: `error`, then close 4400."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class BadMessage(Exception):
    """A message the session rejects with `error` and then carries on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Session:
    def __init__(self, server: "StreamServer", ws) -> None:
        self.server = server
        self.ws = ws
        self.id = uuid.uuid4().hex[:12]
        self.role: str | None = None  # "producer" | "viewer"
        self.room: Room | None = None
        self.speaker: str | None = None
        self.outbox = Outbox(ws, server.config.send_queue, server.metrics.viewer_resyncs.inc)
        self._audio: AudioInput | None = None
        self._segmenter: VadSegmenter | None = None
        self._slots = asyncio.Semaphore(server.config.session_queue)
        self._inflight: set[asyncio.Task] = set()
        self._waiting = 0  # segments queued for the model and not answered yet
        self._finishing: asyncio.Task | None = None
        self._last_lag_warning = 0.0

    # -- incoming ---------------------------------------------------------------------------

    async def on_message(self, message: str | bytes) -> None:
        try:
            if isinstance(message, bytes):
                await self._on_audio(message)
            else:
                await self._on_text(message)
        except BadMessage as e:
            self.error(e.code, str(e))
        except ProtocolViolation as e:
            self.error(e.code, str(e))
            await self.outbox.drain()
            await self.ws.close(CLOSE_PROTOCOL_VIOLATION, e.code)

    async def _on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            raise BadMessage("bad_json", "text frames must be JSON objects") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise BadMessage("bad_message", "a message must be a JSON object with a string 'type'")
        kind = message["type"]
        if kind == "start":
            await self._start(message)
        elif kind == "subscribe":
            self._subscribe(message)
        elif kind == "stop":
            if self.role != "producer":
                raise BadMessage("not_streaming", "'stop' ends an audio stream; none was started")
            await self.finish(connected=True)
        elif kind == "ping":
            self.outbox.send({"type": "pong"})
        else:
            raise BadMessage("unknown_type", f"unknown message type {kind!r}")

    async def _start(self, message: dict) -> None:
        if self.role is not None:
            raise BadMessage("already_started", f"this session is already a {self.role}")
        protocol = message.get("protocol", PROTOCOL_VERSION)
        if protocol != PROTOCOL_VERSION:
            raise ProtocolViolation("unsupported_protocol",
                                    f"protocol {protocol!r} not supported; this server speaks 1")
        encoding = message.get("encoding", "pcm_s16le")
        if encoding not in ENCODINGS:
            raise ProtocolViolation("unsupported_encoding",
                                    f"encoding {encoding!r} not supported; use pcm_s16le")
        if message.get("channels", 1) != 1:
            raise ProtocolViolation("unsupported_channels", "only mono audio (channels: 1)")
        rate = message.get("sample_rate", SAMPLE_RATE)
        if not isinstance(rate, int) or isinstance(rate, bool) or \
                not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise ProtocolViolation(
                "bad_sample_rate",
                f"sample_rate must be an integer from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}")
        speaker = message.get("speaker")
        if speaker is not None and (not isinstance(speaker, str) or len(speaker) > 128):
            raise ProtocolViolation("bad_speaker", "speaker must be a string of at most 128 chars")
        room = self._room_name(message, ProtocolViolation)
        self.role, self.speaker = "producer", speaker
        self._started_at = time.time()
        self._audio = AudioInput(rate)
        self._segmenter = VadSegmenter(self.server.vad_config)
        self.server.metrics.sessions_total.labels("producer").inc()
        self.server.metrics.sessions_active.labels("producer").inc()
        self._join(room)

    def _subscribe(self, message: dict) -> None:
        room = self._room_name(message, BadMessage)
        if self.role == "producer" and room != self.room.name:
            raise BadMessage("room_mismatch", "a producer can only resync its own room")
        if self.role is None:
            self.role = "viewer"
            self.server.metrics.sessions_total.labels("viewer").inc()
            self.server.metrics.sessions_active.labels("viewer").inc()
        if self.room is not None and self.room.name == room:
            self.outbox.send_snapshot()  # a resync: a fresh snapshot is the whole answer
            return
        self._join(room)

    def _room_name(self, message: dict, error: type[Exception]) -> str:
        room = message.get("room", "default")
        if not isinstance(room, str) or not ROOM_NAME.match(room):
            raise error("bad_room", "room must be 1-64 characters: letters, digits, '_', '.', '-'"
                        " (starting with a letter or digit)")
        return room

    def _join(self, name: str) -> None:
        if self.room is not None:
            self.room.members.discard(self.outbox)
        self.room = self.server.room(name)
        self.room.members.add(self.outbox)
        self.outbox.snapshot_source = self.room.graph.snapshot
        cfg = self.server.config
        self.outbox.send({
            "type": "ready", "session_id": self.id, "room": name, "protocol": PROTOCOL_VERSION,
            "role": self.role,
            "limits": {"max_message_bytes": cfg.max_message_bytes,
                       "min_sample_rate": MIN_SAMPLE_RATE, "max_sample_rate": MAX_SAMPLE_RATE,
                       "encodings": list(ENCODINGS), "max_utterance_s": cfg.max_utterance_s}})
        self.outbox.send_snapshot()

    async def _on_audio(self, data: bytes) -> None:
        if self.role != "producer":
            raise ProtocolViolation("audio_before_start",
                                    "send {'type':'start', ...} before any audio")
        if self._finishing is not None:
            return  # audio after stop or during shutdown is not part of the stream
        samples = self._audio.feed(data)
        self.server.metrics.audio_seconds.inc(len(samples) / SAMPLE_RATE)
        await self._handle(self._segmenter.feed(samples))

    # -- segments to triplets ---------------------------------------------------------------

    async def _handle(self, events) -> None:
        for event in events:
            if isinstance(event, (SpeechStart, SpeechEnd)):
                kind = "speech_start" if isinstance(event, SpeechStart) else "speech_end"
                self.outbox.send({"type": "vad", "event": kind, "t": round(event.t, 3)})
            elif isinstance(event, Dropped):
                self.server.metrics.segments_dropped.inc()
            elif isinstance(event, Segment):
                await self._queue_segment(event)

    async def _queue_segment(self, segment: Segment) -> None:
        self.server.metrics.segments.labels(str(segment.forced_split).lower()).inc()
        self.outbox.send({"type": "segment", "segment_id": segment.index,
                          "start": round(segment.start_s, 3), "end": round(segment.end_s, 3),
                          "forced_split": segment.forced_split})
        if self._slots.locked():
            self._warn_lagging("this session's segments are waiting for the model; "
                               "audio is read slower until it catches up")
        # Backpressure: with `session_queue` segments waiting, stop reading this client's audio.
        await self._slots.acquire()
        self._waiting += 1
        task = asyncio.create_task(self._infer(segment, time.monotonic()))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _infer(self, segment: Segment, closed_at: float) -> None:
        metrics = self.server.metrics
        message = {"type": "triplets", "segment_id": segment.index,
                   "start": round(segment.start_s, 3), "end": round(segment.end_s, 3)}
        try:
            result = await self.server.engine.submit(self.id, segment.audio)
        except Exception as e:
            log.exception("inference failed for %s/%s", self.id, segment.index)
            metrics.errors.labels("inference_failed").inc()
            message.update(source="speech", text="", triplets=[], error="inference_failed",
                           message=str(e))
        else:
            if result.queue_ms > self.server.config.lag_warning_s * 1000:
                self._warn_lagging(f"segments wait {result.queue_ms / 1000:.1f} s for the model")
            # The room learns the facts before the client is told about them.
            # Meeting time of the utterance: when the session started plus where in its stream
            # the segment ends. Live, that is the wall clock; a file sent faster keeps its pace.
            self.room.apply(result.triplets, Mention(self.id, segment.index, self.speaker,
                                                     continues_previous=segment.overlap > 0,
                                                     text=result.text),
                            self._started_at + segment.end_s)
            metrics.triplets.inc(len(result.triplets))
            message.update(
                source="speech", text=result.text,
                triplets=[t.to_json() for t in result.triplets],
                latency_ms=round((time.monotonic() - closed_at) * 1000, 1),
                queue_ms=round(result.queue_ms, 1), infer_ms=round(result.infer_ms, 1),
                batch_size=result.batch_size)
        finally:
            self._waiting -= 1
            self._slots.release()
        metrics.latency.observe(time.monotonic() - closed_at)
        self.outbox.send(message)
        if self.server.publisher is not None and "error" not in message:
            self.server.publisher.publish_triplets(self.room.name, {
                **message, "session_id": self.id, "room": self.room.name,
                "message_id": f"{self.id}/{segment.index}"})

    def _warn_lagging(self, detail: str) -> None:
        now = time.monotonic()
        if now - self._last_lag_warning < LAG_WARNING_EVERY_S:
            return
        self._last_lag_warning = now
        self.server.metrics.lagging.inc()
        self.outbox.send({"type": "warning", "code": "lagging", "message": detail,
                          "pending_segments": self._waiting})

    def error(self, code: str, message: str) -> None:
        self.server.metrics.errors.labels(code).inc()
        self.outbox.send({"type": "error", "code": code, "message": message})

    # -- the end ----------------------------------------------------------------------------

    async def finish(self, connected: bool) -> None:
        """Flush the open utterance and answer every segment; then `done` and close 1000.

        Runs once whoever asks first (`stop`, a disconnect, a server shutdown); later callers
        wait for it. With `connected=False` the results still reach the room graph.
        """
        if self._finishing is None:
            self._finishing = asyncio.create_task(self._finish(connected))
        await asyncio.shield(self._finishing)

    async def _finish(self, connected: bool) -> None:
        if self.role == "producer":
            tail = self._audio.flush()
            await self._handle(self._segmenter.feed(tail) + self._segmenter.flush())
            if self._inflight:
                await asyncio.gather(*list(self._inflight), return_exceptions=True)
        if connected and not self.outbox.closed:
            if self.role == "producer":
                self.outbox.send({"type": "done"})
            await self.outbox.drain()
            await self.ws.close(CLOSE_NORMAL)

    async def close(self) -> None:
        """The connection is gone: leave the room and stop the writer."""
        if self.role == "producer" and self._finishing is None:
            await self.finish(connected=False)
        elif self._finishing is not None:
            await asyncio.shield(self._finishing)
        if self.room is not None:
            self.room.members.discard(self.outbox)
        if self.role is not None:
            self.server.metrics.sessions_active.labels(self.role).dec()
        await self.outbox.close()
