"""One WebSocket session: the asyncio shell around a `SessionProtocol`.

Frames go into the protocol; the shell carries its actions out: replies on the session's
outbox, room membership, segments to the inference engine (with backpressure) and their
answers to the room graph and the client, with their voices (`SessionVoices`), live captions,
and the end of the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from streamre import SAMPLE_RATE
from streamre.graph import Mention
from streamre.inference.answers import InferenceResult
from streamre.inference.engine import InferenceEngine
from streamre.hearing.vocabulary import BadVocabulary
from streamre.protocol import (Action, Close, CloseCode, DropSegment, Failed, FindTurns,
                               Finish, HearPartial, Infer, InferText, JoinRoom, Reply, Role,
                               SendHistory, SendSnapshot, SessionProtocol, done_message,
                               error_message, triplets_message, warning_message)
from streamre.server.captions import Captions
from streamre.server.connection import Connection
from streamre.server.metrics import Metrics
from streamre.server.notes import read_sentence
from streamre.server.outbox import Outbox
from streamre.server.names import RoomNames
from streamre.server.room import Room, record_counted
from streamre.server.rooms import Rooms
from streamre.server.voices import SessionVoices
from streamre.voices.clusterer import VoiceSettings

log = logging.getLogger("streamre.session")

LAG_WARNING_EVERY_S = 5.0


@dataclass(frozen=True)
class SessionSettings:
    send_queue: int  # messages a client may fall behind before its graph updates resync
    session_queue: int  # segments waiting for the model before the client's audio is not read
    lag_warning_s: float  # a segment waiting longer than this warns the client
    voices: VoiceSettings = VoiceSettings()  # how the voices of its segments are told apart


class Session:
    """Args:
        ws: the client's `Connection`.
        protocol: this session's `SessionProtocol`.
        engine: where segments are heard.
        rooms: the server's rooms, entered and left here.
        room_names: where `start.context` is read and kept.
        metrics: the server's counters.
        settings: queue sizes and the lag warning.
    """

    def __init__(self, ws: Connection, protocol: SessionProtocol, engine: InferenceEngine,
                 rooms: Rooms, room_names: RoomNames, metrics: Metrics,
                 settings: SessionSettings) -> None:
        self.ws, self.protocol, self.engine = ws, protocol, engine
        self.rooms, self.room_names = rooms, room_names
        self.metrics, self.settings = metrics, settings
        self.id = protocol.session_id
        self.room: Room | None = None
        self.outbox = Outbox(ws, settings.send_queue, metrics.viewer_resyncs.inc)
        self._slots = asyncio.Semaphore(settings.session_queue)
        self._inflight: set[asyncio.Task] = set()
        self._answered: asyncio.Future | None = None  # set once the latest segment is answered
        self._waiting = 0  # segments queued for the model and not answered yet
        self._finishing: asyncio.Task | None = None
        self._last_lag_warning = 0.0
        self._started_at = time.time()
        self.captions = Captions(self.id, engine, metrics, lambda: self.protocol.speaker)
        self.voices = SessionVoices(self.id, engine, settings.voices)

    @property
    def role(self) -> str | None:
        return self.protocol.role

    async def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            heard = self.protocol.samples_heard
            actions = self.protocol.receive_audio(message)  # refused frames add nothing
            self.metrics.audio_seconds.inc((self.protocol.samples_heard - heard) / SAMPLE_RATE)
        else:
            role = self.role
            actions = self.protocol.receive_text(message)
            if self.role != role:
                self.metrics.sessions_total.labels(self.role).inc()
                self.metrics.sessions_active.labels(self.role).inc()
                self._started_at = time.time()
        await self._carry_out(actions)
        await self.outbox.wait_for_reader()  # a client that does not read is not read either

    async def _carry_out(self, actions: list[Action]) -> None:
        later: list[dict | None] = []  # errors that follow the actions' own replies
        for action in actions:
            if isinstance(action, Reply):
                if action.message["type"] == "error":
                    self.metrics.errors.labels(action.message["code"]).inc()
                self.outbox.send(action.message)
            elif isinstance(action, JoinRoom):
                self._join(action.room_name)
                if action.vocabulary:
                    later.append(self._add_vocabulary(action.vocabulary))
                if action.context is not None:
                    later.append(await self._set_context(action.context))
            elif isinstance(action, SendSnapshot):
                self.outbox.send_snapshot()
            elif isinstance(action, SendHistory):
                self.outbox.follow_transcript(self.room.transcript_after)
            elif isinstance(action, Infer):
                closed_at = time.monotonic()
                heard = self.captions.closing(action.segment)
                # Answered in stream order: a final whose words a partial heard may be ready
                # before the one said before it.
                before, self._answered = self._answered, asyncio.get_running_loop().create_future()
                await self._queue(self._infer(action.segment, closed_at, heard,
                                              before, self._answered))
            elif isinstance(action, FindTurns):
                # Before it is numbered: each voice's piece is a segment of its own. The
                # session's audio waits meanwhile, so segments stay numbered in stream order.
                cuts = await self.voices.turns(action.segment)
                self.metrics.voice_turn_cuts.inc(len(cuts))
                await self._carry_out(self.protocol.turns_found(action.segment, cuts))
            elif isinstance(action, HearPartial):
                if self.room is not None:
                    self.captions.hear(action.partial, self.room)
            elif isinstance(action, InferText):
                # The room it was typed in, even if the viewer moves on before the answer.
                await self._queue(self._infer_text(action, time.monotonic(), self.room))
            elif isinstance(action, DropSegment):
                self.metrics.segments_dropped.inc()
            elif isinstance(action, Finish):
                await self.finish(connected=True)
            elif isinstance(action, Close):
                await self.outbox.drain()
                await self.ws.close(action.code, action.reason)
        for message in filter(None, later):
            self.outbox.send(message)

    def _join(self, name: str) -> None:
        if self.room is not None:
            self.rooms.leave(self.room, self.outbox)
        room = self.room = self.rooms.enter(name, self.outbox)
        room.names.joined(self.protocol.speaker)  # expected from the start, not its first line
        self.outbox.snapshot_source = lambda: room.graph.snapshot()
        self.outbox.follow_transcript(None)  # until asked (`history`), in this room too

    def _add_vocabulary(self, vocabulary: tuple[str, ...]) -> dict | None:
        """`start`'s phrases joined to the room's; the error to send (after `ready`) when
        the room's own and these together are too many."""
        try:
            self.room.set_vocabulary(list(vocabulary), add=True)
        except BadVocabulary as e:
            self.metrics.errors.labels("bad_vocabulary").inc()
            return error_message("bad_vocabulary",
                                 f"vocabulary not added, the room keeps its own: {e}")
        return None

    async def _set_context(self, context: str) -> dict | None:
        """`start`'s context as the room's; the error to send (after `ready`) if it could not
        be kept."""
        status, answer = await self.room_names.set_context(self.room.name, context)
        if status != 200:
            self.metrics.errors.labels(answer["error"]).inc()
            return error_message(answer["error"], f"context not kept: {answer['message']}")
        return None

    # -- segments to triplets ---------------------------------------------------------------

    async def _queue(self, work) -> None:
        """Run `work` (a segment's or a sentence's inference) once a slot is free."""
        if self._slots.locked():
            self._warn_lagging("this session's segments are waiting for the model; "
                               "audio is read slower until it catches up")
        # Backpressure: with `session_queue` items waiting, stop reading this client's frames.
        await self._slots.acquire()
        self._waiting += 1
        task = asyncio.create_task(work)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _infer(self, segment, closed_at: float, heard_by: asyncio.Task | None,
                     before: asyncio.Future | None, answered: asyncio.Future) -> None:
        self.metrics.segments.labels(str(segment.forced_split).lower()).inc()
        embedding = self.voices.embed(segment)  # beside its hearing
        try:
            heard = await self._hear_and_read(segment, heard_by)
            if before is not None:
                await before  # the segment before this one is journaled and answered first
            failed = heard if isinstance(heard, Failed) else None
            text, triplets = ("", []) if failed else (heard.text, heard.triplets)
            voice = await self.voices.voice_of(segment, embedding, failed is None)
            # The room journals the segment and learns its facts before the client is told.
            # Meeting time: when the session started plus where in its stream the segment is.
            # Live, that is the wall clock; a file sent faster keeps its pace.
            mention = Mention(self.id, segment.index, self.protocol.speaker,
                              continues_previous=segment.overlap > 0, text=text, voice=voice)
            # A journal that refused the segment is what the client hears of first.
            failed = record_counted(self.room, self.metrics, mention, triplets,
                                    self._started_at + segment.end_s,
                                    self._started_at + segment.start_s, segment.start_s,
                                    segment.end_s) or failed
            message = triplets_message(segment, text, **(failed.fields() if failed
                                                         else heard.fields(closed_at)))
            if voice is not None:
                message["voice"] = voice
            self.metrics.latency.observe(time.monotonic() - closed_at)
            self.outbox.send(message)
            self.room.report(self.id, message)
        finally:
            self._waiting -= 1
            self._slots.release()
            answered.set_result(None)

    async def _hear_and_read(self, segment, heard_by: asyncio.Task | None
                             ) -> InferenceResult | Failed:
        """The segment's transcript and triplets, or why there are none (then nothing was
        heard). `heard_by`: a partial that heard all of its speech, whose words are read."""
        words = await heard_by if heard_by is not None else None
        try:
            if words is not None:
                result = await self.engine.submit_heard(self.id, words)
                self.metrics.finals_from_partials.inc()
            else:
                result = await self.engine.submit(self.id, segment.audio,
                                                  self.room.hearing_vocabulary())
        except Exception as e:
            log.exception("inference failed for %s/%s", self.id, segment.index)
            self.metrics.errors.labels("inference_failed").inc()
            return Failed("inference_failed", str(e))
        if result.queue_ms > self.settings.lag_warning_s * 1000:
            self._warn_lagging(f"segments wait {result.queue_ms / 1000:.1f} s for the model")
        return result

    async def _infer_text(self, item: InferText, asked_at: float, room: Room) -> None:
        try:
            message = await read_sentence(self.engine, self.metrics, room, self.id,
                                          item.item_id, item.sentence, item.speaker, asked_at)
        finally:
            self._waiting -= 1
            self._slots.release()
        self.outbox.send(message)

    def _warn_lagging(self, detail: str) -> None:
        now = time.monotonic()
        if now - self._last_lag_warning < LAG_WARNING_EVERY_S:
            return
        self._last_lag_warning = now
        self.metrics.lagging.inc()
        self.outbox.send(warning_message("lagging", detail, pending_segments=self._waiting))

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
        if self.role == Role.PRODUCER:
            await self._carry_out(self.protocol.end_of_stream())
            if self._inflight:
                await asyncio.gather(*list(self._inflight), return_exceptions=True)
        if connected and not self.outbox.closed:
            if self.role == Role.PRODUCER:
                self.outbox.send(done_message())
            await self.outbox.drain()
            await self.ws.close(CloseCode.NORMAL)

    async def handshake_expired(self, seconds: float) -> None:
        await self._carry_out(self.protocol.handshake_expired(seconds))

    async def close(self) -> None:
        """The connection is gone: leave the room and stop the writer. What the session sent
        still reaches the room graph."""
        if self.role == Role.PRODUCER and self._finishing is None:
            await self.finish(connected=False)
        elif self._finishing is not None:
            await asyncio.shield(self._finishing)
        if self._inflight:  # a viewer's sentences
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        await self.captions.close()
        if self.room is not None:
            self.rooms.leave(self.room, self.outbox)
        if self.role is not None:
            self.metrics.sessions_active.labels(self.role).dec()
        await self.outbox.close()
