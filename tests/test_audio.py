"""Audio in: PCM bytes split anywhere, any rate from 8 to 48 kHz, resampled as a stream."""

from __future__ import annotations

import numpy as np
import pytest
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from streamre.audio import AudioInput, PcmDecoder, StreamResampler, read_audio


@settings(max_examples=100, deadline=None)
@given(samples=st.lists(st.integers(-32768, 32767), max_size=500),
       cuts=st.lists(st.integers(0, 1001), max_size=10))
def test_decoder_carries_odd_bytes_across_frames(samples, cuts):
    data = np.array(samples, dtype="<i2").tobytes()
    decoder = PcmDecoder()
    bounds = sorted({0, len(data), *[c for c in cuts if c <= len(data)]})
    out = [decoder.decode(data[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    decoded = np.concatenate(out) if out else np.zeros(0, np.int16)
    np.testing.assert_array_equal(decoded, np.array(samples, dtype=np.int16))
    assert decoder.pending_bytes == 0


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 48000])
def test_streaming_resampler_matches_one_shot_resampling(rate):
    t = np.arange(rate * 2) / rate
    tone = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)
    resampler = StreamResampler(rate)
    chunks, offset, sizes = [], 0, [1, 7, 160, 333, 4000]
    while offset < len(tone):
        size = sizes[len(chunks) % len(sizes)]
        chunks.append(resampler.process(tone[offset:offset + size]))
        offset += size
    chunks.append(resampler.flush())
    streamed = np.concatenate(chunks)
    assert abs(len(streamed) - 32000) <= 1
    reference = tone if rate == 16000 else soxr.resample(tone, rate, 16000, quality="HQ")
    n = min(len(streamed), len(reference))
    # State is kept across chunks: the result is the one-shot result, not 1-sample clicks.
    assert np.max(np.abs(streamed[:n].astype(int) - reference[:n].astype(int))) <= 2


@pytest.mark.parametrize("rate", [7999, 48001, 0])
def test_rates_outside_the_range_are_refused(rate):
    with pytest.raises(ValueError):
        StreamResampler(rate)


def test_audio_input_never_crashes_on_any_frame_size():
    source = AudioInput(44100)
    rng = np.random.default_rng(0)
    data = rng.integers(-2000, 2000, 44100, dtype=np.int16).tobytes()
    total, offset = 0, 0
    for size in [0, 1, 3, 2, 999, 88200, 5]:
        total += len(source.feed(data[offset:offset + size]))
        offset += size
    total += len(source.feed(data[offset:])) + len(source.flush())
    assert abs(total - 16000) <= 1


def test_read_audio_mixes_down_and_resamples(tmp_path):
    import soundfile

    stereo = np.stack([np.full(22050, 0.25), np.full(22050, -0.25)], axis=1)
    soundfile.write(tmp_path / "s.wav", stereo, 22050)
    audio = read_audio(tmp_path / "s.wav")
    assert audio.dtype == np.int16 and abs(len(audio) - 16000) <= 1
    assert np.abs(audio[100:-100]).max() < 5  # the two channels cancel
    with pytest.raises(ValueError):
        read_audio(tmp_path / "missing.wav")
