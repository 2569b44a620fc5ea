"""A speaker encoder: a segment's audio to one unit vector that says whose voice it is.

The network is GE2E's (arXiv 1710.10467): three LSTM layers of 256 over 40 mel bands of power
(not log) every 10 ms, the last layer's final state through a linear layer and a ReLU, L2-
normalised. Its weights are Resemblyzer's (Apache-2.0), which ship inside that package
(`resemblyzer/pretrained.pt`); they are read from the installed package without importing it,
whose own code needs librosa. The mels are Whisper's filters (`streamre.whisper.features`):
the same 25 ms windows every 10 ms, Slaney-scale and -normalised, as the encoder was trained on.

A segment is embedded as the encoder was trained to embed an utterance: windows of 1.6 s, each
embedded, their mean normalised. Every window of a batch of segments goes through the LSTM at
once. Each window costs about 4 ms on 2 cores, so windows do not overlap (Resemblyzer's overlap
by half) and a segment has at most two, spread over it: on the voices dev streams this told the
voices apart as well as three or the overlapping windows, at a fraction of the cost
(docs/evaluation.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from streamre.whisper.features import HOP, N_FFT, as_float, mel_filters

N_MELS = 40
WINDOW_FRAMES = 160  # 1.6 s: the partial utterances the encoder was trained on
WINDOW_STEP = 160  # windows follow each other
MOST_WINDOWS = 2  # per segment: the encoder's cost stays under ~10 ms a segment, batched
EMBEDDING_SIZE = 256
TARGET_DBFS = -30.0  # quiet speech is raised to this level first, as in training
WEIGHTS_PACKAGE = "resemblyzer"
WEIGHTS_FILE = "pretrained.pt"


class EncoderMissing(FileNotFoundError):
    """The package that ships the speaker encoder's weights is not installed."""


def weights_path() -> Path:
    """Where the installed Resemblyzer package keeps its weights (the package is not imported)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderMissing(
            "telling voices apart needs the speaker encoder's weights from the Resemblyzer "
            "package: pip install --no-deps resemblyzer==0.1.4 (or run with --voices off)")
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise EncoderMissing(f"the Resemblyzer package has no {WEIGHTS_FILE} at {path}")
    return path


class SpeakerEncoder(nn.Module):
    """GE2E's encoder. Args: weights: a checkpoint with its `model_state` (default: Resemblyzer's).
    """

    def __init__(self, weights: Path | None = None) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, 256, num_layers=3, batch_first=True)
        self.linear = nn.Linear(256, EMBEDDING_SIZE)
        checkpoint = torch.load(weights or weights_path(), map_location="cpu", weights_only=True)
        state = {k: v for k, v in checkpoint["model_state"].items()
                 if k.startswith(("lstm.", "linear."))}  # not GE2E's similarity scale
        self.load_state_dict(state)
        self.eval()

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """mels: shape = (B, frames, 40), mel power. Returns (B, 256), unit vectors."""
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp(min=1e-8)

    def embed(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Segments (int16 or float, 16 kHz) to their voices: shape = (len, 256), unit rows."""
        if not waveforms:
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        each = self.embed_windows(waveforms, lambda samples: window_starts(frame_count(samples)))
        out = np.stack([e.sum(axis=0) for e in each])
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-8)

    @torch.inference_mode()
    def embed_windows(self, waveforms: Sequence[np.ndarray],
                      starts_of: Callable[[int], list[int]]) -> list[np.ndarray]:
        """Each segment's 1.6 s windows embedded, all in one call: per segment an array of
        (windows, 256) unit rows. starts_of: a (raised) segment's samples -> the first frame of
        each of its windows."""
        windows, owners = [], []
        for i, w in enumerate(waveforms):
            x = raised(w)
            windows += [(x, start) for start in starts_of(len(x))]
            owners += [i] * (len(windows) - len(owners))
        each = self(window_mels(windows)).numpy() if windows else \
            np.zeros((0, EMBEDDING_SIZE), np.float32)
        bounds = np.searchsorted(np.asarray(owners, int), np.arange(len(waveforms) + 1))
        return [each[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def window_starts(frames: int, step: int = WINDOW_STEP, most: int | None = MOST_WINDOWS
                  ) -> list[int]:
    """The first frame of each 1.6 s window of a segment of `frames`, `step` apart, the last
    one kept only if at least three quarters of it is speech; at least one, at most `most`
    (spread evenly over the segment)."""
    starts = list(range(0, max(1, frames - WINDOW_FRAMES + step), step))
    if len(starts) > 1 and frames - starts[-1] < 0.75 * WINDOW_FRAMES:
        starts.pop()
    if most is not None and len(starts) > most:
        starts = [starts[round(i * (len(starts) - 1) / max(1, most - 1))] for i in range(most)]
    return starts


def raised(waveform: np.ndarray) -> np.ndarray:
    """A segment as the encoder hears it: float32, raised (never lowered) to -30 dBFS, at least
    one FFT window long."""
    x = as_float(waveform).astype(np.float32)
    rms = float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0
    if 0 < rms < 10 ** (TARGET_DBFS / 20):
        x = x * np.float32(10 ** (TARGET_DBFS / 20) / rms)
    return np.pad(x, (0, N_FFT - len(x))) if len(x) < N_FFT else x


def frame_count(samples: int) -> int:
    """Frames of a segment of `samples` (at least N_FFT): one every 10 ms, centred."""
    return 1 + samples // HOP


def window_mels(windows: Sequence[tuple[np.ndarray, int]]) -> torch.Tensor:
    """The encoder's input for windows of `raised` segments, each (segment, first frame):
    shape = (len, WINDOW_FRAMES, 40), mel power every 10 ms, each frame centred on its time
    (zeros beyond the segment) as a centred STFT of the whole segment gives them, and frames
    past the segment's end silent. One STFT for them all, where a window at a time
    spent about a sixth of the encoder's time on the mels of eight segments."""
    span = (WINDOW_FRAMES - 1) * HOP + N_FFT  # the samples of a window's frames
    pieces, frames = [], []
    for x, first in windows:
        start = first * HOP - N_FFT // 2  # frames are centred: zeros before the segment
        piece = x[max(start, 0):start + span]
        pieces.append(np.pad(piece, (max(-start, 0), span - len(piece) - max(-start, 0))))
        frames.append(min(WINDOW_FRAMES, frame_count(len(x)) - first))
    spectrum = torch.stft(torch.from_numpy(np.stack(pieces)), N_FFT, HOP,
                          window=torch.hann_window(N_FFT), center=False, return_complex=True)
    power = torch.view_as_real(spectrum).pow(2).sum(-1)  # |z|², without abs's square root
    mels = (mel_filters(N_MELS) @ power).transpose(1, 2)
    past_end = torch.arange(WINDOW_FRAMES)[None, :] >= torch.tensor(frames)[:, None]
    return mels.masked_fill(past_end[:, :, None], 0.0).contiguous()
