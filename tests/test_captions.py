"""Live captions' pure cores: when the open utterance is heard (the pacer over the segmenter),
and how the batching policy puts finals before partials. Data in, decisions out."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamre.audio import Segment, VadConfig, VadSegmenter
from streamre.audio.partials import PartialPacer, PartialPacing, heard_whole
from streamre.audio.vad import FRAME_SAMPLES
from streamre.inference.batching import (BatchPolicy, DropPartials, HeardJob, PartialJob,
                                         REGULAR_PARTIALS, RunPartials, RunRead, RunSpeech,
                                         SpeechJob, Wait)
from test_vad import loud_frame, pattern_audio

CONFIG = VadConfig(pre_roll_ms=90, hangover_ms=300, min_utterance_ms=150, max_utterance_s=15)
PACING = PartialPacing(every_s=1.0, settle_ms=120)
SECOND = 16000


def captions(pattern: list[bool], chunk: int = 1600, config: VadConfig = CONFIG,
             pacing: PartialPacing = PACING) -> list:
    """The segmenter's segments and the pacer's partials (start, end, at_pause), in the
    order a session would see them, feeding `chunk` samples at a time."""
    segmenter = VadSegmenter(config, loud_frame)
    pacer = PartialPacer(pacing, config.min_voiced_samples)
    audio, seen = pattern_audio(pattern), []
    for offset in range(0, len(audio), chunk):
        seen += [e for e in segmenter.feed(audio[offset:offset + chunk])
                 if isinstance(e, Segment)]
        due = pacer.due(segmenter.open_utterance)
        if due is not None:
            seen.append(due)
    return seen + [e for e in segmenter.flush() if isinstance(e, Segment)]


def frames(seconds: float) -> int:
    return round(seconds * SECOND / FRAME_SAMPLES)


def test_the_open_utterance_is_heard_every_second_and_once_more_at_its_pause():
    seen = captions([False] * frames(0.5) + [True] * frames(3.3) + [False] * frames(1.0))
    *partials, segment = seen
    assert isinstance(segment, Segment)
    assert all(p[0] == segment.start for p in partials)
    # Every second of the utterance's stream audio, then one at the pause.
    ends = [p[1] - segment.start for p in partials]
    assert [p[2] for p in partials] == [False, False, False, True]
    assert all(abs(b - a - SECOND) <= 1600 for a, b in zip(ends[:2], ends[1:3], strict=True))
    assert ends[0] <= SECOND + 1600
    # The one at the pause heard all of the speech: the final may take its words.
    assert heard_whole(*partials[-1][:2], segment)
    assert not heard_whole(*partials[-2][:2], segment)


def test_a_blip_too_short_to_keep_is_never_captioned():
    seen = captions([False] * 10 + [True] * 4 + [False] * 40 + [True] * frames(1.5)
                    + [False] * 20)
    segments = [e for e in seen if isinstance(e, Segment)]
    partials = [e for e in seen if not isinstance(e, Segment)]
    assert len(segments) == 1 and partials
    assert all(p[0] == segments[0].start for p in partials)


def test_no_partials_when_off_and_none_at_a_pause_without_new_speech():
    pattern = [False] * 5 + [True] * frames(2.0) + [False] * frames(1.0)
    assert not [e for e in captions(pattern, pacing=PartialPacing(0, 0))
                if not isinstance(e, Segment)]
    # Heard up to its last voiced frame by a paced partial: no second one at the pause.
    seen = captions(pattern, pacing=PartialPacing(every_s=0.5, settle_ms=600))
    assert not any(p[2] for p in seen if not isinstance(p, Segment))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 80)), min_size=1, max_size=12),
       st.sampled_from([480, 1000, 1600, 4800]))
def test_every_partial_is_of_an_utterance_whose_segment_follows(runs, chunk):
    pattern = [voiced for voiced, n in runs for _ in range(n)]
    config = VadConfig(pre_roll_ms=90, hangover_ms=150, min_utterance_ms=60, max_utterance_s=2)
    seen = captions(pattern, chunk, config, PartialPacing(every_s=0.3, settle_ms=60))
    last_end: dict[int, int] = {}
    for i, item in enumerate(seen):
        if isinstance(item, Segment):
            continue
        start, end, _ = item
        assert end > last_end.get(start, start)  # later partials of one utterance hear more
        last_end[start] = end
        # Its segment (the next one to close) begins where it does and holds its audio,
        # unless it was cut at a forced split: then the partial's words are never its final's.
        segment = next(e for e in seen[i:] if isinstance(e, Segment))
        assert segment.start == start
        assert end <= segment.end or (segment.forced_split
                                      and not heard_whole(start, end, segment))


# -- the batching core: finals before partials ------------------------------------------------

def partial(session: str, seconds: float = 1.0, at: float = 0.0) -> PartialJob:
    return PartialJob(session, np.zeros(int(seconds * SECOND), np.int16), at)


def segment(session: str, seconds: float = 1.0, at: float = 0.0) -> SpeechJob:
    return SpeechJob(session, np.zeros(int(seconds * SECOND), np.int16), at)


def test_a_partial_is_refused_while_finals_wait_and_dropped_when_one_comes():
    policy = BatchPolicy(max_batch=8, gather_s=0.0)
    policy.add_speech(segment("a"))
    assert not policy.add_partial(partial("b"))  # finals wait: never queued
    assert isinstance(policy.decide(0.0), RunSpeech)
    assert policy.add_partial(partial("b")) and policy.add_partial(partial("c"))
    assert not policy.add_partial(partial("b"))  # one queued per stream
    policy.add_speech(segment("a"))
    dropped = policy.decide(0.0)
    assert isinstance(dropped, DropPartials)
    assert sorted(j.session_id for j in dropped.jobs) == ["b", "c"]
    assert isinstance(policy.decide(0.0), RunSpeech) and policy.decide(0.0) is None


def test_finals_that_were_heard_are_read_first_and_partials_go_last_by_window():
    policy = BatchPolicy(max_batch=8, gather_s=0.0, window_of=lambda w: 10 if len(w) <= 10 * SECOND else 20)
    policy.add_partial(partial("a", 3.0))
    policy.add_partial(partial("b", 12.0))
    policy.add_partial(partial("c", 4.0))
    policy.add_heard(HeardJob("d", "David Chen works for the World Bank.", 0.0))
    assert isinstance(policy.decide(0.0), RunRead)
    first = policy.decide(0.0)
    assert isinstance(first, RunPartials) and [j.session_id for j in first.jobs] == ["a", "c"]
    assert [j.session_id for j in policy.decide(0.0).jobs] == ["b"]
    assert policy.decide(0.0) is None


def test_closing_drops_partials_and_runs_every_final():
    policy = BatchPolicy(max_batch=8, gather_s=0.5)
    policy.add_partial(partial("a"))
    policy.add_speech(segment("b"))
    assert isinstance(policy.decide(0.0, live_producers=4, closing=True), DropPartials)
    assert isinstance(policy.decide(0.0, live_producers=4, closing=True), RunSpeech)


def test_a_queued_partial_is_taken_back_when_its_segment_closes():
    policy = BatchPolicy(max_batch=8, gather_s=0.0)
    assert policy.add_partial(partial("a")) and policy.add_partial(partial("b"))
    assert policy.withdraw_partial("a").session_id == "a"
    assert policy.withdraw_partial("a") is None  # never twice
    assert [j.session_id for j in policy.decide(0.0).jobs] == ["b"]


def test_partials_take_at_most_their_share_of_the_model_and_finals_never_wait_for_it():
    policy = BatchPolicy(max_batch=8, gather_s=0.0, partial_share=0.5)
    policy.add_partial(partial("a"))
    assert isinstance(policy.decide(10.0), RunPartials)
    policy.partials_took(10.4, 0.4)  # they rest as long as they ran
    policy.add_partial(partial("b"))
    assert policy.decide(10.5) == Wait(10.8)
    policy.add_speech(segment("c"))  # a final goes at once (and the partial is dropped)
    assert isinstance(policy.decide(10.5), DropPartials)
    assert isinstance(policy.decide(10.5), RunSpeech)
    policy.add_partial(partial("b"))
    assert isinstance(policy.decide(10.8), RunPartials)


def test_a_call_takes_the_partials_at_a_pause_first_and_few_others():
    """Partials heard at a pause (a final's hearing, done early) fill a call; others are few,
    so a final that closes while they run waits little."""
    policy = BatchPolicy(max_batch=8, gather_s=0.0)
    for session in "abcd":
        policy.add_partial(partial(session))
    for session in "ef":
        policy.add_partial(PartialJob(session, np.zeros(SECOND, np.int16), 0.0, at_pause=True))
    assert [j.session_id for j in policy.decide(0.0).jobs] == \
        ["e", "f", *"abcd"[:REGULAR_PARTIALS]]
    assert [j.session_id for j in policy.decide(0.0).jobs] == \
        list("abcd"[REGULAR_PARTIALS:2 * REGULAR_PARTIALS])


def test_a_partial_heard_at_a_pause_never_rests():
    policy = BatchPolicy(max_batch=8, gather_s=0.0, partial_share=0.5)
    policy.partials_took(10.0, 1.0)  # partials rest until 11.0
    policy.add_partial(partial("a"))
    policy.add_partial(PartialJob("b", np.zeros(SECOND, np.int16), 10.0, at_pause=True))
    assert [j.session_id for j in policy.decide(10.1).jobs] == ["b"]
    assert policy.decide(10.2) == Wait(11.0)
    assert [j.session_id for j in policy.decide(11.0).jobs] == ["a"]
