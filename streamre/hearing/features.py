"""Whisper's log-mel front end on a window: the segment zero-padded to the window's length, as
Whisper pads its 30 s chunks, so the padding looks like what it was trained on."""

from __future__ import annotations

import numpy as np
import torch

from streamre import SAMPLE_RATE
from streamre.whisper.features import HOP, N_FFT, as_float, mel_filters


def window_log_mel(waveforms: list[np.ndarray], window_s: int, n_mels: int = 80) -> np.ndarray:
    """Segments of at most `window_s` seconds to Whisper's features of that window.

    Returns: shape = (B, n_mels, window_s * 100), float32: log10 of the mel power, clamped to
    8 below each segment's peak, scaled as Whisper scales it; the padding reads as silence.
    """
    samples = window_s * SAMPLE_RATE
    batch = torch.zeros(len(waveforms), samples)
    for i, w in enumerate(waveforms):
        if len(w) > samples:
            raise ValueError(f"a segment of {len(w) / SAMPLE_RATE:.1f} s does not fit a "
                             f"{window_s} s window")
        batch[i, :len(w)] = torch.from_numpy(as_float(w))
    spectrum = torch.stft(batch, N_FFT, HOP, window=torch.hann_window(N_FFT),
                          return_complex=True)[..., :-1]
    power = spectrum.abs().pow(2)  # (B, freq, frames)
    bands = torch.clamp(mel_filters(n_mels) @ power, min=1e-10).log10()
    peak = bands.amax(dim=(1, 2), keepdim=True)
    bands = torch.maximum(bands, peak - 8.0)
    return ((bands + 4.0) / 4.0).numpy()
