"""PCM16 bytes at any rate in, 16 kHz int16 samples out; sans-I/O, state kept across frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr

from streamre import SAMPLE_RATE

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000


class PcmDecoder:
    """Little-endian signed 16-bit bytes to samples; an odd trailing byte waits for the next frame."""

    def __init__(self) -> None:
        self._carry = b""

    def decode(self, data: bytes) -> np.ndarray:
        data = self._carry + data
        usable = len(data) - len(data) % 2
        self._carry = data[usable:]
        return np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)

    @property
    def pending_bytes(self) -> int:
        return len(self._carry)


class StreamResampler:
    """Resample a stream chunk by chunk with soxr, keeping the filter state between chunks."""

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE) -> None:
        if not MIN_SAMPLE_RATE <= in_rate <= MAX_SAMPLE_RATE:
            raise ValueError(f"sample rate {in_rate} outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}")
        self.in_rate, self.out_rate = in_rate, out_rate
        self._stream = None if in_rate == out_rate else soxr.ResampleStream(
            in_rate, out_rate, 1, dtype="int16", quality="HQ")

    def process(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples, last=last)

    def flush(self) -> np.ndarray:
        return self.process(np.zeros(0, dtype=np.int16), last=True)


class AudioInput:
    """Bytes of one client's stream in, 16 kHz int16 out: decoder and resampler together."""

    def __init__(self, sample_rate: int) -> None:
        self.decoder = PcmDecoder()
        self.resampler = StreamResampler(sample_rate)

    def feed(self, data: bytes) -> np.ndarray:
        return self.resampler.process(self.decoder.decode(data))

    def flush(self) -> np.ndarray:
        return self.resampler.flush()


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a sound file as mono int16 at `sample_rate` (channels averaged, soxr resampling)."""
    import soundfile

    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as e:
        raise ValueError(f"{path}: cannot read audio: {e}") from None
    mono = audio.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.clip(np.round(mono * 32767.0), -32768, 32767).astype(np.int16)


def read_audio_native(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a sound file as mono int16 at its own rate (what a client sends as-is)."""
    import soundfile

    try:
        audio, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as e:
        raise ValueError(f"{path}: cannot read audio: {e}") from None
    mono = audio.astype(np.int32).mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    return np.asarray(mono, dtype=np.int16), int(rate)
