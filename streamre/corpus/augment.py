"""Augmentation of synthetic speech: speed, gain and additive noise at a chosen SNR.

Pure functions of the samples and a numpy generator, so a seed fixes the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr


@dataclass(frozen=True)
class Augmentation:
    fraction: float = 0.0  # share of utterances augmented; the rest stay clean
    speed: tuple[float, float] = (1.0, 1.0)  # tempo factor range (pitch moves with it)
    gain_db: tuple[float, float] = (0.0, 0.0)
    snr_db: tuple[float, float] | None = None  # white noise at an SNR drawn from this range

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"augmentation fraction must be in [0, 1], not {self.fraction}")
        for name, (lo, hi) in (("speed", self.speed), ("gain_db", self.gain_db),
                               ("snr_db", self.snr_db or (0.0, 0.0))):
            if lo > hi:
                raise ValueError(f"augmentation {name} range is empty: {lo} > {hi}")
        if self.speed[0] <= 0:
            raise ValueError(f"augmentation speed must be positive, not {self.speed[0]}")

    def draw(self, rng: np.random.Generator) -> dict:
        """What to do to one utterance ({} leaves it clean); recorded in the manifest."""
        if rng.random() >= self.fraction:
            return {}
        params = {"speed": round(float(rng.uniform(*self.speed)), 3),
                  "gain_db": round(float(rng.uniform(*self.gain_db)), 2)}
        if self.snr_db is not None:
            params["snr_db"] = round(float(rng.uniform(*self.snr_db)), 2)
        return params


def augment(samples: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Apply drawn `params` to int16 samples; the noise comes from `rng`."""
    if not params:
        return samples
    x = samples.astype(np.float32) / 32768.0
    if params.get("speed", 1.0) != 1.0:
        # 16 kHz audio resampled to 16/speed kHz and played at 16 kHz: tempo and pitch x speed.
        x = soxr.resample(x, 16000, 16000 / params["speed"], quality="HQ").astype(np.float32)
    if params.get("gain_db", 0.0):
        x = x * np.float32(10 ** (params["gain_db"] / 20))
    if "snr_db" in params:
        x = add_noise(x, params["snr_db"], rng)
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise scaled so that signal power / noise power is `snr_db` over the voiced part."""
    power = np.mean(x[np.abs(x) > 1e-3] ** 2) if np.any(np.abs(x) > 1e-3) else 0.0
    if power == 0.0:
        return x
    noise = rng.standard_normal(len(x)).astype(np.float32)
    return x + noise * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))
