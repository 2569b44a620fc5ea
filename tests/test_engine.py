"""The batching engine carrying out its policy with a real model: the batches it hands over and
the answers it gives back. The policy's rules, times included, are tested on the policy alone
(`test_batching.py`); here a gather window of 30 s stands for "waits", so no outcome hangs on
how fast this machine is.

The extractor here is a real `ModelExtractor` on the trained fact checkpoint, wrapped to record
the batches the engine hands it."""

from __future__ import annotations

import asyncio
import time


from streamre.model.extractor import ModelExtractor
from streamre.inference.engine import InferenceEngine

from helpers import FACT, FACT_TEXT, noise


class Recording(ModelExtractor):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[list[int]] = []  # segment lengths per model call

    def extract(self, waveforms, vocabularies=None):
        self.calls.append([len(w) for w in waveforms])
        return super().extract(waveforms, vocabularies)


async def run_engine(path, producers, jobs, gather_ms=300, max_batch=8):
    extractor = Recording.load(str(path), "cpu")
    engine = InferenceEngine(lambda: extractor, max_batch=max_batch, gather_ms=gather_ms,
                             live_producers=(lambda: producers) if producers is not None else None)
    await engine.start()
    began = time.monotonic()
    try:
        results = await asyncio.gather(*(engine.submit(session, audio) for session, audio in jobs))
    finally:
        await engine.close()
    return extractor, results, time.monotonic() - began


GATHER_MS = 30_000  # far longer than any test: waiting for it would show


def test_a_lone_producer_never_waits_for_a_batch(fact_checkpoint):
    _, (result,), took = asyncio.run(
        run_engine(fact_checkpoint, producers=1, jobs=[("a", noise(0.5, 0))],
                   gather_ms=GATHER_MS))
    assert [(t.head, t.relation, t.tail) for t in result.triplets] == [FACT]
    assert result.text == FACT_TEXT
    assert took < GATHER_MS / 1000 / 2 and result.batch_size == 1  # it did not wait


def test_other_live_producers_make_it_wait_and_batch(fact_checkpoint):
    async def scenario():
        extractor = Recording.load(str(fact_checkpoint), "cpu")
        engine = InferenceEngine(lambda: extractor, max_batch=8, gather_ms=GATHER_MS,
                                 live_producers=lambda: 3)
        await engine.start()
        first = asyncio.create_task(engine.submit("a", noise(0.5, 1)))
        await asyncio.sleep(0.1)  # b and c speak a moment later, within the gather window
        rest = [engine.submit("b", noise(0.6, 2)), engine.submit("c", noise(0.4, 3))]
        results = await asyncio.gather(first, *rest)
        await engine.close()
        return extractor, results

    extractor, results = asyncio.run(scenario())
    assert extractor.calls[-1] and len(extractor.calls[-1]) == 3  # one call for all three
    assert [r.batch_size for r in results] == [3, 3, 3]
    # It waited for the others, and went as soon as the last live producer had a segment.
    assert 90 <= results[0].queue_ms < GATHER_MS / 2  # b and c came 100 ms after a


def test_round_robin_takes_one_segment_per_session_in_turn(fact_checkpoint):
    # Session a queues four segments before b queues one: b's still rides in the first batch.
    jobs = [("a", noise(0.3 + i / 10, i)) for i in range(4)] + [("b", noise(0.35, 9))]
    extractor, results, _ = asyncio.run(
        run_engine(fact_checkpoint, producers=None, jobs=jobs, gather_ms=50, max_batch=2))
    assert extractor.calls[1:3] == [[len(jobs[0][1]), len(jobs[4][1])],
                                    [len(jobs[1][1]), len(jobs[2][1])]]
    assert all(r.triplets for r in results)


def test_typed_sentences_never_hold_up_waiting_audio(fact_checkpoint, text_checkpoint):
    from streamre.inference.text_extractor import TextExtractor

    order: list[str] = []

    class RecordingText(TextExtractor):
        def extract(self, texts):
            order.append(f"text x{len(texts)}")
            return super().extract(texts)

    class RecordingSpeech(Recording):
        def extract(self, waveforms, vocabularies=None):
            order.append(f"speech x{len(waveforms)}")
            return super().extract(waveforms, vocabularies)

    async def scenario():
        speech = RecordingSpeech.load(str(fact_checkpoint), "cpu")
        text = RecordingText.load(text_checkpoint)
        engine = InferenceEngine(lambda: speech, max_batch=8, gather_ms=0,
                                 load_text=lambda: text)
        await engine.start()
        order.clear()  # the warm-up calls
        # Sentences first, audio a moment after: the audio still goes first.
        typed = [asyncio.create_task(engine.submit_text("v", FACT_TEXT)) for _ in range(3)]
        heard = engine.submit("a", noise(0.5, 0))
        results = await asyncio.gather(heard, *typed)
        await engine.close()
        return results

    results = asyncio.run(scenario())
    assert order == ["speech x1", "text x3"]
    assert all([(t.head, t.relation, t.tail) for t in r.triplets] == [FACT] for r in results)
    assert [r.text for r in results[1:]] == [FACT_TEXT] * 3


class Windowed(Recording):
    """Whisper's hearing pads segments to windows; here: under 0.5 s one window, else another."""

    def window_of(self, waveform):
        return 10 if len(waveform) < 8000 else 20


def test_a_batch_holds_segments_of_one_window_and_the_others_keep_their_turn(fact_checkpoint):
    async def scenario():
        extractor = Windowed.load(str(fact_checkpoint), "cpu")
        engine = InferenceEngine(lambda: extractor, max_batch=8, gather_ms=0)
        await engine.start()
        jobs = [("a", noise(0.3, 0)), ("b", noise(0.7, 1)), ("c", noise(0.4, 2)),
                ("a", noise(0.8, 3))]
        results = await asyncio.gather(*(engine.submit(s, audio) for s, audio in jobs))
        await engine.close()
        return extractor, results

    extractor, results = asyncio.run(scenario())
    windows = [{extractor.window_of(range(n)) for n in call} for call in extractor.calls[1:]]
    assert windows == [{10}, {20}] and [len(c) for c in extractor.calls[1:]] == [2, 2]
    assert all(r.triplets for r in results)
