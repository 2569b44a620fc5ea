"""The batching engine: segments from every session, one model, results back to their sessions.

What runs next, and when, is `BatchPolicy`'s decision (`streamre.inference.batching`: round-robin
across sessions, gathering, one window per batch, typed sentences never holding up audio, finals
before partials). This shell carries it out: it feeds the policy, sleeps when told to wait, and
runs the blocking extractor on its own thread so the event loop never waits on the model.

With a speaker encoder (`load_voices`), finals are embedded beside their hearing, on a thread of
the encoder's own (`embed`, `streamre.inference.embeddings`).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Callable

import numpy as np

from streamre import SAMPLE_RATE
from streamre.inference.answers import InferenceResult, TextUnavailable
from streamre.inference.batching import (BatchPolicy, DropPartials, HeardJob, PartialJob,
                                         RunPartials, RunRead, RunSpeech, RunText, SpeechJob,
                                         TextJob, Wait)
from streamre.inference.context import names_in_context
from streamre.inference.embeddings import SpeakerEmbeddings
from streamre.inference.seam import Reader, TripletExtractor, VoiceEncoder, read_sentences
from streamre.triplets import Extraction


class InferenceEngine:
    """Segments from every session in, batched model calls on one worker thread, each answer
    back to the session that asked, in the order `BatchPolicy` decides.

    Args:
        load: makes the extractor (called once, off the event loop, then warmed up). One with
            `window_of(waveform)` (Whisper's hearing) gets batches of one window size.
        max_batch: most segments in one model call.
        gather_ms: how long a batch waits for more segments after its first (not at all when
            every live producer already has one queued).
        metrics: the server's `Metrics`, or None.
        live_producers: how many producers are streaming now.
        load_text: makes the text extractor for written sentences (None: text is refused).
        load_voices: makes the speaker encoder (`streamre.voices.encoder`; None: finals carry
            no voice).
    """

    def __init__(self, load: Callable[[], TripletExtractor], max_batch: int = 8,
                 gather_ms: int = 20, metrics=None,
                 live_producers: Callable[[], int] | None = None,
                 load_text: Callable[[], Reader] | None = None,
                 load_voices: Callable[[], VoiceEncoder] | None = None) -> None:
        self._load = load
        self._load_text = load_text
        self._load_voices = load_voices
        self.text_extractor: Reader | None = None
        self.voices: SpeakerEmbeddings | None = None
        self._live_producers = live_producers
        self.policy = BatchPolicy(max_batch, gather_ms / 1000)
        self.metrics = metrics
        self.extractor: TripletExtractor | None = None
        self.ready = asyncio.Event()
        self.load_error: BaseException | None = None
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
        self.policy.window_of = self.extractor.window_of
        self.ready.set()
        self._wakeup.set()

    @property
    def takes_text(self) -> bool:
        return self._load_text is not None

    @property
    def hears_partials(self) -> bool:
        """Whether its extractor can hear without reading (Whisper apart from the reader)."""
        return hasattr(self.extractor, "hear")

    def _load_and_warm(self) -> TripletExtractor:
        extractor = self._load()
        extractor.warmup()
        if self._load_voices is not None:
            encoder = self._load_voices()
            encoder.embed([np.zeros(SAMPLE_RATE, np.int16)])  # warm
            self.voices = SpeakerEmbeddings(encoder)
        if self._load_text is not None:
            self.text_extractor = self._load_text()
            self.text_extractor.warmup()
        return extractor

    @property
    def pending(self) -> int:
        return self.policy.pending

    async def submit(self, session_id: str, audio: np.ndarray,
                     vocabulary: tuple[str, ...] = ()) -> InferenceResult:
        """A segment's transcript and triplets; `vocabulary`: the phrases its room expects."""
        job = SpeechJob(session_id, audio, time.monotonic(), self._future(), vocabulary)
        self.policy.add_speech(job)
        if self.metrics:
            self.metrics.inference_queue.set(self.pending)
        self._wakeup.set()
        return await job.future

    async def submit_partial(self, session_id: str, audio: np.ndarray,
                             vocabulary: tuple[str, ...] = (), at_pause: bool = False
                             ) -> str | None:
        """What was heard of an open utterance so far, or None: dropped because finals wait
        (now or before its turn came) or the session already has one queued. `at_pause`: heard
        at a pause, so its words may be the final's."""
        job = PartialJob(session_id, audio, time.monotonic(), self._future(), vocabulary,
                         at_pause)
        if not self.policy.add_partial(job):
            return None
        self._wakeup.set()
        return await job.future

    def withdraw_partial(self, session_id: str) -> bool:
        """Take back the session's partial if it has not started (it is answered None)."""
        job = self.policy.withdraw_partial(session_id)
        if job is not None and not job.future.done():
            job.future.set_result(None)
        return job is not None

    async def submit_heard(self, session_id: str, text: str) -> InferenceResult:
        """A final whose words a partial already heard: its facts, read ahead of any hearing."""
        job = HeardJob(session_id, text, time.monotonic(), self._future())
        self.policy.add_heard(job)
        self._wakeup.set()
        return await job.future

    async def submit_text(self, session_id: str, sentence: str) -> InferenceResult:
        """A written sentence's triplets (its `text` is the sentence); TextUnavailable when
        the server has no text extractor."""
        if self._load_text is None:
            raise TextUnavailable("this server has no text extractor (serve --text-model)")
        job = TextJob(session_id, sentence, time.monotonic(), self._future())
        self.policy.add_text(job)
        self._wakeup.set()
        return await job.future

    async def embed(self, audio: np.ndarray) -> np.ndarray | None:
        """A final's speaker embedding, made beside its hearing; None without an encoder."""
        await self.ready.wait()
        return None if self.voices is None else await self.voices.embed(audio)

    async def turn_windows(self, audio: np.ndarray) -> np.ndarray | None:
        """The embeddings of a segment's windows, to find where its voice changes
        (`streamre.voices.turns`); None without an encoder."""
        await self.ready.wait()
        return None if self.voices is None else await self.voices.turn_windows(audio)

    async def context_names(self, text: str) -> list[str]:
        """The names of a meeting's context: read by the text extractor's tagger on the model's
        thread (a context is rare; it takes its turn there), capitalised runs without one."""
        await self.ready.wait()
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, names_in_context, text, self.text_extractor)

    def _future(self) -> asyncio.Future:
        if self._closing and (self._worker is None or self._worker.done()):
            raise RuntimeError("inference engine is closed")
        return asyncio.get_running_loop().create_future()

    async def _run(self) -> None:
        await self.ready.wait()
        while True:
            live = self._live_producers() if self._live_producers is not None else None
            decision = self.policy.decide(time.monotonic(), live, self._closing)
            if isinstance(decision, RunText):
                await self._call(decision.jobs, [j.sentence for j in decision.jobs],
                                 self._extract_text)
            elif isinstance(decision, RunSpeech):
                await self._call(decision.jobs, [j.waveform for j in decision.jobs],
                                 self._speech_call(decision.jobs), record=True)
            elif isinstance(decision, RunRead):
                await self._call(decision.jobs, [j.text for j in decision.jobs],
                                 self.extractor.read)
            elif isinstance(decision, RunPartials):
                started = time.monotonic()
                await self._call(decision.jobs, [j.waveform for j in decision.jobs],
                                 self._speech_call(decision.jobs, self.extractor.hear),
                                 as_text=True)
                self.policy.partials_took(time.monotonic(), time.monotonic() - started)
            elif isinstance(decision, DropPartials):
                for job in decision.jobs:
                    if not job.future.done():
                        job.future.set_result(None)
            elif decision is None and self._closing:
                return
            else:  # wait for the policy's time, or for new work, whichever comes first
                self._wakeup.clear()
                timeout = decision.until - time.monotonic() if isinstance(decision, Wait) \
                    else None
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout)
                except asyncio.TimeoutError:
                    pass

    def _speech_call(self, jobs: list[SpeechJob] | list[PartialJob], call=None
                     ) -> Callable[[list], list]:
        """The extractor's call (`extract`, or `call`) for these segments, with their
        vocabularies if any."""
        vocabularies = [j.vocabulary for j in jobs]
        return partial(call or self.extractor.extract,
                       vocabularies=vocabularies if any(vocabularies) else None)

    def _extract_text(self, sentences: list[str]) -> list[Extraction]:
        """Typed sentences' facts, and their names (the room expects to hear them)."""
        return read_sentences(self.text_extractor, sentences, with_names=True)

    async def _call(self, batch: list, items: list, extract: Callable[[list], list],
                    record: bool = False, as_text: bool = False) -> None:
        """One model call on the worker thread; each job gets its answer, or the error.
        `record`: the call goes into the audio metrics (batch size, real-time factor);
        `as_text`: the answers are transcripts, given as they are."""
        started = time.monotonic()
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor, extract, items)
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
                job.future.set_result(answer if as_text else InferenceResult(
                    answer.text, answer.triplets, (started - job.submitted) * 1000, infer_ms,
                    len(batch), answer.names))

    def _record(self, batch: list[SpeechJob], started: float, infer_ms: float) -> None:
        if not self.metrics:
            return
        audio_s = sum(len(j.waveform) for j in batch) / SAMPLE_RATE
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
                for job in self.policy.drain():
                    if not job.future.done():
                        job.future.set_exception(RuntimeError("model did not load"))
            self._worker = None
        if self.voices is not None:
            await self.voices.close()
        self._executor.shutdown(wait=True)
