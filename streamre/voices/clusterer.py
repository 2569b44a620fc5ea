"""Online clustering of one session's voices: each segment's embedding joins the voice it is
closest to, or opens a new one. Pure and synchronous; the session feeds it in stream order.

A voice is the mean of its segments' embeddings (GE2E's centroid). A segment joins its closest
voice, which learns from it, when their cosine similarity reaches `threshold`; below it, the
segment is somebody not heard yet and opens the next voice. A voice heard in one segment so
far is a less sure mean (on the dev streams a voice's next segment falls below 0.78 of it one
time in a hundred, below 0.85 of a mean of two as rarely), so it is joined from `heard_once`.
A segment too short to be sure of (under `min_open_s`) only ever joins its closest voice (the
first, if there is none yet), and no voice learns from it. Voices are numbered from 1 in the
order they were opened, and a segment's number never changes once given.

The threshold is the highest at which no voice of the dev streams ever split in two, over ten
minutes alone: a voice split is a wrong line for the rest of the meeting, two close voices
merged are one speaker's lines until someone names them apart (docs/evaluation.md has the
sweep).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamre.settings import setting


@dataclass(frozen=True)
class VoiceSettings:
    """How a session's voices are told apart (`serve --voice-*`)."""
    threshold: float = setting(0.79, "cosine similarity to its closest voice at which a "
                                     "segment joins it; below, it opens a new voice")
    heard_once: float = setting(0.76, "the same for a voice heard in one segment so far, whose "
                                      "mean is one segment's and so less sure")
    min_open_s: float = setting(1.0, "seconds a segment needs to open a new voice or move one")
    max_per_session: int = setting(8, "voices told apart in one session; past it, a segment "
                                      "joins the closest")
    turns: str = setting("off", "on: look inside each segment of 4.8 s or more for a change of "
                                "voice (people answering without a pause) and cut it there, "
                                "before it is heard; about 4 ms of the encoder per 0.4 s of such "
                                "segments", choices=["on", "off"])
    turn_threshold: float = setting(0.74, "cosine similarity between the voice of the 2.4 s "
                                          "before a point and after it below which "
                                          "`turns` cuts there")

    def __post_init__(self) -> None:
        if not -1.0 <= self.heard_once <= 1.0 or not -1.0 <= self.threshold <= 1.0:
            raise ValueError("voice thresholds must be in [-1, 1], got "
                             f"{self.threshold} and {self.heard_once}")
        if not -1.0 <= self.turn_threshold <= 1.0:
            raise ValueError(f"voice turn_threshold must be in [-1, 1], got {self.turn_threshold}")
        if self.turns not in ("on", "off"):
            raise ValueError(f"voice turns must be on or off, got {self.turns!r}")
        if self.min_open_s < 0 or self.max_per_session < 1:
            raise ValueError("voice min_open_s must be >= 0 and max_per_session >= 1")


class VoiceClusterer:
    """One session's voices. Args: settings: the threshold and bounds."""

    def __init__(self, settings: VoiceSettings | None = None) -> None:
        self.settings = settings or VoiceSettings()
        self._sums: list[np.ndarray] = []  # each voice's summed member embeddings
        self._centroids: list[np.ndarray] = []  # each voice's mean, a unit vector
        self._members: list[int] = []  # how many segments each voice learnt from

    @property
    def voices(self) -> int:
        return len(self._sums)

    def assign(self, embedding: np.ndarray, seconds: float) -> int:
        """The voice (1, 2, ...) of a segment of `seconds` with this unit `embedding`."""
        embedding = np.asarray(embedding, np.float32)
        if not self._sums:
            return self._open(embedding)
        similarity = np.stack(self._centroids) @ embedding
        best = int(np.argmax(similarity))
        if seconds < self.settings.min_open_s:
            return best + 1
        needed = self.settings.heard_once if self._members[best] == 1 else self.settings.threshold
        if similarity[best] < needed and self.voices < self.settings.max_per_session:
            return self._open(embedding)
        self._sums[best] = self._sums[best] + embedding
        self._centroids[best] = _unit(self._sums[best])
        self._members[best] += 1
        return best + 1

    def _open(self, embedding: np.ndarray) -> int:
        self._sums.append(embedding.copy())
        self._centroids.append(_unit(embedding))
        self._members.append(1)
        return self.voices


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-8)
