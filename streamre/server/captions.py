"""One producer's live captions: its open utterance heard while it is spoken (`partial`).

One partial of a stream is heard at a time: one asked for while the previous is still being
heard is dropped, as is one the engine drops because finals wait. A caption is sent only while
its utterance is open, so none ever follows its final line. When the last partial of an
utterance heard all of its speech, the final takes those words and is only read.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from streamre.audio import Segment
from streamre.audio.partials import Partial, heard_whole
from streamre.inference.engine import InferenceEngine
from streamre.protocol import partial_message
from streamre.server.metrics import Metrics
from streamre.server.room import Room

log = logging.getLogger("streamre.captions")


class Captions:
    """Args:
        session_id: the producer's session.
        engine: where partials are heard.
        metrics: the server's counters (`streamre_partials_total{outcome}`).
        speaker: the producer's speaker name, as it stands.
    """

    def __init__(self, session_id: str, engine: InferenceEngine, metrics: Metrics,
                 speaker: Callable[[], str | None]) -> None:
        self.session_id, self.engine, self.metrics = session_id, engine, metrics
        self.speaker = speaker
        self._closed_start = -1  # where the latest closed segment began, in stream samples
        self._latest: tuple[Partial, asyncio.Task] | None = None  # the latest partial heard
        self._caption = ""  # the words of the latest caption sent

    def hear(self, partial: Partial, room: Room) -> None:
        """Hear the open utterance so far, unless the previous partial is still being heard
        (then this one is dropped; one at a pause goes to the engine all the same, since its
        words may spare the final a hearing)."""
        if not self.engine.hears_partials:
            return
        if self._latest is not None and not self._latest[1].done() and not partial.at_pause:
            self.metrics.partials.labels("dropped").inc()
            return
        self._latest = (partial, asyncio.create_task(self._caption_of(partial, room)))

    def closing(self, segment: Segment) -> asyncio.Task | None:
        """The segment closes, so no caption of it may follow. The task of its last partial if
        that heard all of its speech (its words can be the final's), else None: also when
        that partial is still queued, so the final takes a final's place, ahead of partials,
        rather than waiting behind them."""
        self._closed_start = segment.start
        self._caption = ""
        latest, self._latest = self._latest, None
        if latest is None:
            return None
        partial, task = latest
        if not heard_whole(partial.start, partial.end, segment):
            return None
        return None if self.engine.withdraw_partial(self.session_id) else task

    async def close(self) -> None:
        """The session is over: a partial still being heard is not waited for."""
        if self._latest is not None and not self._latest[1].done():
            self._latest[1].cancel()
            await asyncio.gather(self._latest[1], return_exceptions=True)

    async def _caption_of(self, partial: Partial, room: Room) -> str | None:
        """The partial's words, sent to the room while its utterance is open; None when the
        engine dropped it."""
        try:
            words = await self.engine.submit_partial(self.session_id, partial.audio,
                                                     room.hearing_vocabulary(), partial.at_pause)
        except Exception:  # a caption is never worth a session: its final will say it
            log.exception("partial failed for %s", self.session_id)
            words = None
        if words is None:
            self.metrics.partials.labels("dropped").inc()
        elif partial.start <= self._closed_start:
            self.metrics.partials.labels("late").inc()  # its final line may already be out
        elif words and words != self._caption:
            self._caption = words
            room.send_partial(self.session_id, partial_message(
                self.session_id, self.speaker(), partial.start_s, words))
            self.metrics.partials.labels("sent").inc()
        return words
