"""The VAD segmenter: properties over random speech patterns, and real synthesised speech."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamre.audio import Dropped, Segment, SpeechEnd, SpeechStart, VadConfig, VadSegmenter
from streamre.audio.vad import FRAME_SAMPLES

LOUD = 3000


def loud_frame(frame: np.ndarray) -> bool:
    """A stand-in classifier for property tests: a frame is speech when it is loud."""
    return int(np.abs(frame.astype(np.int32)).max(initial=0)) > LOUD // 2


def pattern_audio(pattern: list[bool], seed: int = 0) -> np.ndarray:
    """One 30 ms frame per flag: loud noise for speech, near-silence otherwise."""
    rng = np.random.default_rng(seed)
    frames = [(rng.uniform(-1, 1, FRAME_SAMPLES) * (LOUD if voiced else 100)).astype(np.int16)
              for voiced in pattern]
    # Distinct values so a sample out of place cannot go unnoticed.
    return np.concatenate(frames) if frames else np.zeros(0, np.int16)


def run(segmenter: VadSegmenter, audio: np.ndarray, chunks: list[int]) -> list:
    events, offset, i = [], 0, 0
    while offset < len(audio):
        size = chunks[i % len(chunks)]
        events += segmenter.feed(audio[offset:offset + size])
        offset += size
        i += 1
    return events + segmenter.flush()


SMALL = VadConfig(pre_roll_ms=90, hangover_ms=150, min_utterance_ms=60, max_utterance_s=0.9,
                  split_overlap_ms=60, trigger_frames=3, trigger_ratio=0.6)

# Speech as alternating runs of voiced and unvoiced frames, from blips to long monologues.
patterns = st.lists(st.integers(1, 45), max_size=16).map(
    lambda runs: [i % 2 == 1 for i, n in enumerate(runs) for _ in range(n)])
chunk_sizes = st.lists(st.integers(1, 2000), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(pattern=patterns, chunks=chunk_sizes)
def test_segments_are_exact_bounded_monotonic_and_cover_speech(pattern, chunks):
    audio = pattern_audio(pattern)
    segmenter = VadSegmenter(SMALL, is_speech=loud_frame)
    events = run(segmenter, audio, chunks)
    segments = [e for e in events if isinstance(e, Segment)]
    dropped = [e for e in events if isinstance(e, Dropped)]

    previous_end = 0
    for i, s in enumerate(segments):
        assert s.index == i
        assert 0 < s.end - s.start <= SMALL.max_samples  # never longer than the maximum
        np.testing.assert_array_equal(s.audio, audio[s.start:s.end])  # exact samples, exact times
        # No overlap except the declared one, and never out of order.
        assert s.start == previous_end - s.overlap if s.overlap else s.start >= previous_end
        assert s.overlap == 0 or (s.forced_split and segments[i - 1].forced_split)
        assert s.overlap in (0, SMALL.overlap_samples)
        previous_end = s.end

    # Every speech frame is in a segment or in an utterance dropped (and counted) as too short.
    spans = [(s.start, s.end) for s in segments] + [(d.start, d.end) for d in dropped]
    for f, voiced in enumerate(pattern):
        if voiced and sum(pattern[max(0, f - 2):f + 1]) >= 2:  # the trigger fires here
            start = f * FRAME_SAMPLES
            assert any(a <= start and start + FRAME_SAMPLES <= b for a, b in spans), f
    assert segmenter.dropped_short == len(dropped)

    # Timestamps of VAD events are monotonic and alternate start/end.
    marks = [e for e in events if isinstance(e, (SpeechStart, SpeechEnd))]
    assert [type(m) for m in marks] == [SpeechStart, SpeechEnd] * (len(marks) // 2)
    times = [m.sample for m in marks]
    assert times == sorted(times)


@settings(max_examples=50, deadline=None)
@given(chunks=chunk_sizes)
def test_long_speech_is_force_split_at_the_quietest_frame(chunks):
    pattern = [True] * 100  # 3 s of speech, limit 0.9 s
    audio = pattern_audio(pattern)
    quiet = 20 * FRAME_SAMPLES  # a quieter (still voiced) frame inside the first search window
    audio[quiet:quiet + FRAME_SAMPLES] //= 2
    events = run(VadSegmenter(SMALL, is_speech=loud_frame), audio, chunks)
    segments = [e for e in events if isinstance(e, Segment)]
    assert len(segments) >= 3
    assert all(s.forced_split for s in segments)
    assert segments[1].start == quiet  # cut where it was quietest
    assert segments[0].end == quiet + SMALL.overlap_samples
    assert segments[-1].end == len(audio)


@pytest.mark.parametrize("voiced_frames", range(20, 45))
def test_no_segment_exceeds_the_maximum_whenever_speech_ends(voiced_frames):
    # Speech ending anywhere around the limit (0.9 s = 30 frames, hangover 5 frames).
    pattern = [True] * voiced_frames + [False] * 10
    events = run(VadSegmenter(SMALL, is_speech=loud_frame), pattern_audio(pattern), [480])
    segments = [e for e in events if isinstance(e, Segment)]
    assert segments and all(s.end - s.start <= SMALL.max_samples for s in segments)
    assert segments[0].start == 0 and segments[-1].end >= voiced_frames * FRAME_SAMPLES


def test_short_blips_are_dropped_and_counted():
    pattern = [False] * 10 + [True] * 1 + [False] * 20 + [True] * 2 + [False] * 20
    segmenter = VadSegmenter(VadConfig(min_utterance_ms=120, trigger_frames=3,
                                       trigger_ratio=0.3), is_speech=loud_frame)
    events = run(segmenter, pattern_audio(pattern), [480])
    assert not [e for e in events if isinstance(e, Segment)]
    assert segmenter.dropped_short == 2


def test_feed_rejects_bad_input_and_use_after_flush():
    segmenter = VadSegmenter(SMALL, is_speech=loud_frame)
    with pytest.raises(TypeError):
        segmenter.feed(np.zeros(10, dtype=np.float32))
    segmenter.flush()
    with pytest.raises(RuntimeError):
        segmenter.feed(np.zeros(10, dtype=np.int16))


def test_real_speech_with_webrtcvad_gives_one_segment_per_utterance(meeting_audio):
    segmenter = VadSegmenter(VadConfig())
    events = run(segmenter, meeting_audio, [320, 777, 1600])
    segments = [e for e in events if isinstance(e, Segment)]
    assert len(segments) == 2
    # Each utterance starts after its second of leading silence, with pre-roll before it.
    first, second = segments
    assert 0.5 < first.start_s < 1.0 and first.end_s < second.start_s
    assert second.end_s <= len(meeting_audio) / 16000
    assert not any(s.forced_split for s in segments)


def test_config_validates_limits():
    with pytest.raises(ValueError):
        VadConfig(max_utterance_s=0.5, split_overlap_ms=300)
