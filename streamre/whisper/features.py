"""Audio into Whisper: waveforms to a padded batch, and Whisper's log-mel features.

Whisper's front end (25 ms windows every 10 ms, 80 Slaney mel bands, log10 clamped to 8 below
the peak, scaled), computed on each segment's own samples rather than a 30 s window.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch
from torch import nn

from streamre import SAMPLE_RATE

N_FFT = 400  # Whisper's 25 ms windows ...
HOP = 160  # ... every 10 ms
WHISPER_WINDOW_S = 30  # the window Whisper was trained on: 3000 frames


def as_float(waveform: np.ndarray) -> np.ndarray:
    """int16 or float samples to float32 in [-1, 1]."""
    waveform = np.asarray(waveform)
    if waveform.dtype == np.int16:
        return waveform.astype(np.float32) / 32768.0
    return waveform.astype(np.float32, copy=False)


def equal_parts(waveforms: Sequence[np.ndarray], max_samples: int
                ) -> tuple[list[np.ndarray], list[int]]:
    """Waveforms longer than `max_samples` cut into equal parts that fit; returns the parts and,
    for each, the index of the waveform it came from (answers are joined back by it)."""
    parts: list[np.ndarray] = []
    owners: list[int] = []
    for i, w in enumerate(waveforms):
        pieces = max(1, -(-len(w) // max_samples))
        for k in range(pieces):
            parts.append(w[k * len(w) // pieces:(k + 1) * len(w) // pieces])
            owners.append(i)
    return parts, owners


def prepare_waveforms(waveforms: list[np.ndarray], device: torch.device | str = "cpu"
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """int16 or float waveforms at 16 kHz to padded (B, T) values in [-1, 1] and a mask."""
    longest = max(len(w) for w in waveforms)
    values = torch.zeros(len(waveforms), longest)
    mask = torch.zeros(len(waveforms), longest, dtype=torch.long)
    for i, w in enumerate(waveforms):
        x = torch.from_numpy(as_float(w))
        values[i, : len(x)] = x
        mask[i, : len(x)] = 1
    return values.to(device), mask.to(device)


@functools.lru_cache(maxsize=2)
def mel_filters(n_mels: int) -> torch.Tensor:
    """Whisper's filters: Slaney-scale, Slaney-normalised triangles, (n_mels, N_FFT // 2 + 1)."""
    from transformers.audio_utils import mel_filter_bank

    bank = mel_filter_bank(N_FFT // 2 + 1, n_mels, 0.0, SAMPLE_RATE / 2, SAMPLE_RATE,
                           norm="slaney", mel_scale="slaney")
    return torch.tensor(bank.T, dtype=torch.float32)


def log_mel(values: torch.Tensor, lengths: torch.Tensor, n_mels: int = 80
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) waveforms in [-1, 1] with their lengths in samples to Whisper's log-mel bands,
    each segment on its own samples: (B, n_mels, F) with zeros past a segment's end, and (B,)
    frame counts (one per 10 ms)."""
    window = torch.hann_window(N_FFT, device=values.device)
    filters = mel_filters(n_mels).to(values.device)
    frames = torch.div(lengths.clamp(min=N_FFT), HOP, rounding_mode="floor")
    out = torch.zeros(values.shape[0], n_mels, int(frames.max()), device=values.device)
    for b in range(values.shape[0]):
        x = values[b, : int(lengths[b])].float()
        if x.shape[0] < N_FFT:  # shorter than a window: pad with silence
            x = nn.functional.pad(x, (0, N_FFT - x.shape[0]))
        spectrum = torch.stft(x, N_FFT, HOP, window=window, return_complex=True)[:, :-1]
        bands = torch.clamp(filters @ spectrum.abs().pow(2), min=1e-10).log10()
        bands = torch.maximum(bands, bands.max() - 8.0)
        out[b, :, : bands.shape[1]] = (bands + 4.0) / 4.0
    return out, frames
