"""Synthetic voices: espeak-ng and flite, with rate and pitch, rendered to 16 kHz int16.

A voice is written as a spec string so a manifest's `speaker` says exactly how to render it
again: `espeak:<voice>[+<variant>][:s<words per minute>][:p<pitch 0-99>]` or
`flite:<voice>[:s<duration stretch>][:p<mean f0 Hz>]`.

Training draws from `TRAINING_POOL`; flite's `slt` is kept out of it on purpose, so it can
render a test split in a speaker no model here was trained on. Festival voices are not used.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamre.audio import read_audio

HELD_OUT_VOICE = "flite:slt"
FLITE_TRAINING_VOICES = ("kal16", "awb", "rms")
ESPEAK_LANGUAGES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc",
                    "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                   "klatt", "klatt3")


class VoiceError(ValueError):
    """A voice spec that cannot be parsed, or an engine that is not installed."""


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak" or "flite"
    name: str
    rate: float | None = None  # espeak: words per minute; flite: duration stretch (1 = native)
    pitch: float | None = None  # espeak: 0-99; flite: mean f0 in Hz

    @property
    def spec(self) -> str:
        parts = [self.engine, self.name]
        if self.rate is not None:
            parts.append(f"s{self.rate:g}")
        if self.pitch is not None:
            parts.append(f"p{self.pitch:g}")
        return ":".join(parts)

    @property
    def speaker(self) -> str:
        """The voice without rate and pitch: what counts as one speaker for held-out splits."""
        return f"{self.engine}:{self.name}"

    def render(self, text: str) -> np.ndarray:
        """Speak `text`; returns 16 kHz mono int16 samples."""
        with tempfile.TemporaryDirectory(prefix="streamre-tts-") as tmp:
            text_file, wav = Path(tmp) / "text.txt", Path(tmp) / "speech.wav"
            text_file.write_text(text + "\n", encoding="utf-8")  # a file: text may start with "-"
            subprocess.run(self._command(text_file, wav), check=True, capture_output=True,
                           timeout=120)
            return read_audio(wav)

    def _command(self, text_file: Path, wav: Path) -> list[str]:
        if self.engine == "espeak":
            command = ["espeak-ng", "-v", self.name, "-f", str(text_file), "-w", str(wav)]
            if self.rate is not None:
                command += ["-s", str(int(self.rate))]
            if self.pitch is not None:
                command += ["-p", str(int(self.pitch))]
            return command
        command = ["flite", "-voice", self.name, "-f", str(text_file), "-o", str(wav)]
        if self.rate is not None:
            command += ["--setf", f"duration_stretch={self.rate:g}"]
        if self.pitch is not None:
            command += ["--setf", f"int_f0_target_mean={self.pitch:g}"]
        return command


def parse_voice(spec: str) -> Voice:
    parts = spec.strip().split(":")
    if len(parts) < 2 or parts[0] not in ("espeak", "flite") or not parts[1]:
        raise VoiceError(f"bad voice {spec!r}: expected espeak:<voice>[:s<rate>][:p<pitch>] "
                         "or flite:<voice>[:s<stretch>][:p<f0>]")
    rate = pitch = None
    for part in parts[2:]:
        try:
            value = float(part[1:])
        except ValueError:
            value = None
        if part[:1] == "s" and value is not None and value > 0:
            rate = value
        elif part[:1] == "p" and value is not None and value >= 0:
            pitch = value
        else:
            raise VoiceError(f"bad voice {spec!r}: {part!r} is not s<rate> or p<pitch>")
    return Voice(parts[0], parts[1], rate, pitch)


def training_voice(rng: random.Random) -> Voice:
    """One voice from the training pool: half flite (rate and pitch varied), half espeak-ng."""
    if rng.random() < 0.5:
        return Voice("flite", rng.choice(FLITE_TRAINING_VOICES), round(rng.uniform(0.85, 1.2), 2),
                     round(rng.uniform(85, 210)))
    variant = rng.choice(ESPEAK_VARIANTS)
    name = rng.choice(ESPEAK_LANGUAGES) + (f"+{variant}" if variant else "")
    return Voice("espeak", name, rng.randrange(140, 201, 5), rng.randrange(25, 76, 5))


def check_engines(voices: list[Voice], training_pool: bool) -> None:
    engines = {"espeak", "flite"} if training_pool else {v.engine for v in voices}
    programs = {"espeak": "espeak-ng", "flite": "flite"}
    missing = [programs[e] for e in sorted(engines) if shutil.which(programs[e]) is None]
    if missing:
        raise VoiceError(f"not installed: {', '.join(missing)} (apt-get install {' '.join(missing)})")
