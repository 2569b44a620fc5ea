"""The batching engine: segments from every session, one model, results back to their sessions.

Segments are queued per session; the worker takes them round-robin across sessions (a busy
session cannot starve a quiet one), waits `gather_ms` for a batch to fill, and runs the blocking
extractor on its own thread so the event loop never waits on the model. The wait is skipped when
every live producer already has a segment queued: nobody else could join the batch, so waiting
would only add latency (a single stream never waits).

Written sentences (chat, notes) go to the text extractor, on the same thread, and never hold
up audio: a batch of sentences runs when no segment is waiting, or when the oldest sentence
has waited `TEXT_MAX_WAIT_S` (a sentence batch costs milliseconds, a segment batch hundreds).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from streamre import SAMPLE_RATE
from streamre.inference.extractor import TripletExtractor
from streamre.inference.text_extractor import TextExtractor
from streamre.triplets import Extraction, Triplet


@dataclass
class InferenceResult:
    text: str  # the segment's transcript
    triplets: list[Triplet]
    queue_ms: float  # from submit to the start of the model call
    infer_ms: float  # the model call (shared by the whole batch)
    batch_size: int

    def timing(self, asked_at: float) -> dict:
        """A `triplets` message's timing fields; `asked_at` is when the item was ready (the
        segment closed, the sentence arrived), on the monotonic clock."""
        return {"latency_ms": round((time.monotonic() - asked_at) * 1000, 1),
                "queue_ms": round(self.queue_ms, 1), "infer_ms": round(self.infer_ms, 1),
                "batch_size": self.batch_size}


@dataclass
class _Job:
    session_id: str
    audio: np.ndarray | str  # a segment's waveform, or a written sentence
    submitted: float
    future: asyncio.Future = field(repr=False)


TEXT_MAX_WAIT_S = 0.5


class TextUnavailable(RuntimeError):
    """The server has no text extractor."""


class InferenceEngine:
    """Segments from every session in, batched model calls on one worker thread, each answer
    back to the session that asked; sessions are served round-robin.

    Args:
        load: makes the extractor (called once, off the event loop, then warmed up).
        max_batch: most segments in one model call.
        gather_ms: how long a batch waits for more segments after its first (not at all when
            every live producer already has one queued).
        metrics: the server's `Metrics`, or None.
        live_producers: how many producers are streaming now.
        load_text: makes the text extractor for written sentences (None: text is refused).

    An extractor with `window_of(waveform)` (Whisper's hearing) is given batches of one window
    size: the first segment round-robin decides it, and the sessions whose next segment has
    another size wait for a later batch.
    """

    def __init__(self, load: Callable[[], TripletExtractor], max_batch: int = 8,
                 gather_ms: int = 20, metrics=None,
                 live_producers: Callable[[], int] | None = None,
                 load_text: Callable[[], TextExtractor] | None = None) -> None:
        self._load, self._load_text = load, load_text
        self.text_extractor: TextExtractor | None = None
        self._text: deque[_Job] = deque()
        self._live_producers = live_producers
        self.max_batch = max_batch
        self.gather_s = gather_ms / 1000
        self.metrics = metrics
        self.extractor: TripletExtractor | None = None
        self.ready = asyncio.Event()
        self.load_error: BaseException | None = None
        self._queues: OrderedDict[str, deque[_Job]] = OrderedDict()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamre-infer")
        self._worker: asyncio.Task | None = None
        self._closing = False

    async def start(self) -> None:
        """Load and warm up the model off the loop, then start serving the queue."""
        loop = asyncio.get_running_loop()
        self._worker = asyncio.create_task(self._run(), name="inference-worker")
        try:
            self.extractor = await loop.run_in_executor(self._executor, self._load_and_warm)
        except BaseException as e:
            self.load_error = e
            raise
        self.ready.set()
        self._wakeup.set()

    @property
    def takes_text(self) -> bool:
        return self._load_text is not None

    def _load_and_warm(self) -> TripletExtractor:
        extractor = self._load()
        extractor.warmup()
        if self._load_text is not None:
            self.text_extractor = self._load_text()
            self.text_extractor.warmup()
        return extractor

    @property
    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def submit(self, session_id: str, audio: np.ndarray) -> InferenceResult:
        """A segment's transcript and triplets."""
        job = self._job(session_id, audio)
        self._queues.setdefault(session_id, deque()).append(job)
        if self.metrics:
            self.metrics.inference_queue.set(self.pending)
        self._wakeup.set()
        return await job.future

    async def submit_text(self, session_id: str, sentence: str) -> InferenceResult:
        """A written sentence's triplets (its `text` is the sentence); TextUnavailable when
        the server has no text extractor."""
        if self._load_text is None:
            raise TextUnavailable("this server has no text extractor (serve --text-model)")
        job = self._job(session_id, sentence)
        self._text.append(job)
        self._wakeup.set()
        return await job.future

    def _job(self, session_id: str, item: np.ndarray | str) -> _Job:
        if self._closing and (self._worker is None or self._worker.done()):
            raise RuntimeError("inference engine is closed")
        return _Job(session_id, item, time.monotonic(), asyncio.get_running_loop().create_future())

    def _worth_gathering(self) -> bool:
        if self.pending >= self.max_batch or self.gather_s <= 0 or self._closing:
            return False
        # Unknown producers (no counter given): assume someone may still join.
        return self._live_producers is None or self._live_producers() > len(self._queues)

    def _take_batch(self) -> list[_Job]:
        window_of = getattr(self.extractor, "window_of", None)
        batch: list[_Job] = []
        window = None
        waiting: set[str] = set()  # sessions whose next segment needs another window
        while len(batch) < self.max_batch:
            session_id = next((s for s in self._queues if s not in waiting), None)
            if session_id is None:
                break
            queue = self._queues[session_id]
            if window_of is not None:
                size = window_of(queue[0].audio)
                window = size if window is None else window
                if size != window:
                    waiting.add(session_id)  # keeps its place for the next batch
                    continue
            batch.append(queue.popleft())
            # Rotate: this session goes to the back of the line.
            del self._queues[session_id]
            if queue:
                self._queues[session_id] = queue
        return batch

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self.ready.is_set():
                continue
            while self._queues or self._text:
                if self._text and (not self._queues or self._text_overdue()):
                    count = min(self.max_batch, len(self._text))
                    await self._call([self._text.popleft() for _ in range(count)],
                                     self._extract_text, record=False)
                    continue
                if self._worth_gathering():
                    await asyncio.sleep(self.gather_s)
                await self._call(self._take_batch(), self.extractor.extract, record=True)
            if self._closing:
                return

    def _text_overdue(self) -> bool:
        return time.monotonic() - self._text[0].submitted >= TEXT_MAX_WAIT_S

    def _extract_text(self, sentences: list[str]) -> list[Extraction]:
        found = self.text_extractor.extract(sentences)
        return [Extraction(s, triplets) for s, triplets in zip(sentences, found, strict=True)]

    async def _call(self, batch: list[_Job], extract: Callable[[list], list[Extraction]],
                    record: bool) -> None:
        """One model call on the worker thread; each job gets its answer, or the error.
        `record`: the call goes into the audio metrics (batch size, real-time factor)."""
        started = time.monotonic()
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor, extract, [j.audio for j in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"extractor answered {len(results)} of {len(batch)}")
        except Exception as e:  # a bad batch fails its own items, not the server
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(e)
            return
        infer_ms = (time.monotonic() - started) * 1000
        if record:
            self._record(batch, started, infer_ms)
        for job, answer in zip(batch, results, strict=True):
            if not job.future.done():
                job.future.set_result(InferenceResult(
                    answer.text, answer.triplets, (started - job.submitted) * 1000, infer_ms,
                    len(batch)))

    def _record(self, batch: list[_Job], started: float, infer_ms: float) -> None:
        if not self.metrics:
            return
        audio_s = sum(len(j.audio) for j in batch) / SAMPLE_RATE
        self.metrics.batch_size.observe(len(batch))
        self.metrics.infer_seconds.observe(infer_ms / 1000)
        if audio_s > 0:
            self.metrics.real_time_factor.observe(infer_ms / 1000 / audio_s)
        for job in batch:
            self.metrics.queue_seconds.observe(started - job.submitted)
        self.metrics.inference_queue.set(self.pending)

    async def close(self) -> None:
        """Finish every queued segment, then stop the worker and its thread."""
        self._closing = True
        self._wakeup.set()
        if self._worker is not None:
            if self.ready.is_set():
                await self._worker
            else:  # the model never loaded: nothing can serve what is queued
                self._worker.cancel()
                for job in [*(j for q in self._queues.values() for j in q), *self._text]:
                    if not job.future.done():
                        job.future.set_exception(RuntimeError("model did not load"))
                self._queues.clear()
                self._text.clear()
            self._worker = None
        self._executor.shutdown(wait=True)
