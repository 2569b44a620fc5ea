"""Writes the voices evaluation streams: several synthetic voices taking turns on one
"microphone", under noise, with who spoke when.

    python tools/make_voice_streams.py --split dev [--out runs/voices] [--streams 3]
    python tools/make_voice_streams.py --split test

For each of 2, 3 and 4 voices, `--streams` streams with pauses between turns (0.6 to 1.4 s)
and as many without (0 to 0.15 s: the VAD hears one utterance over a change of speaker), each
of 16 turns of one sentence from the meetings set of that split, white noise at 20 dB SNR.
Plus, for every voice of the pool, a stream of that voice alone for `--single-minutes` (a voice
must never split in two). Dev and test draw their voices from disjoint pools: the threshold
chosen on dev never heard a test voice. Writes `<name>.wav` and `<name>.json` ({"voices",
"turns": [{start, end, speaker}], "pauses", "snr_db"}); turn times are each sentence's voiced
span. Deterministic.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import soundfile as sf

from streamre import SAMPLE_RATE
from streamre.corpus.augment import add_noise
from streamre.corpus.voices import parse_voice

MEETINGS = Path(__file__).resolve().parent.parent / "datasets" / "meetings"
# Different engines, languages, variants, rates and pitches; the two pools share no voice.
POOLS = {
    "dev": ["flite:kal16:s1:p100", "flite:awb:s1.05:p125", "espeak:en-us+m3:s160:p40",
            "espeak:en+f2:s170:p60", "espeak:en-gb-scotland+m5:s150:p30",
            "espeak:en-029+f4:s175:p70", "espeak:en-us+m2:s170:p45", "espeak:en+m4:s165:p40",
            "espeak:en-gb-x-gbcwmd+f1:s160:p60", "espeak:en-us-nyc+m6:s155:p35"],
    "test": ["flite:rms:s0.95:p95", "flite:slt:s1:p170", "espeak:en-us-nyc+f3:s165:p65",
             "espeak:en-gb-x-rp+m7:s155:p35", "espeak:en+m1:s180:p45",
             "espeak:en-us+f5:s160:p75"],
}
TURNS = 16
SNR_DB = 20.0
VOICED = 0.01  # amplitude above which a sample counts as voiced, for the turn's span


def sentences(split: str) -> list[str]:
    data = json.loads((MEETINGS / f"{split}.json").read_text())
    return [" ".join(s["tokens"]).replace(" ,", ",").replace(" .", ".") for s in data]


def voiced_span(samples: np.ndarray) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(samples.astype(np.float32) / 32768.0) > VOICED)
    return (int(loud[0]), int(loud[-1]) + 1) if len(loud) else (0, len(samples))


def stream(voices: list[str], lines: list[str], pauses: bool, rng: random.Random,
           noise_rng: np.random.Generator, cache: dict) -> tuple[np.ndarray, list[dict]]:
    pieces, turns, at = [np.zeros(SAMPLE_RATE // 2, np.int16)], [], SAMPLE_RATE // 2
    speaker = rng.choice(voices)
    for text in lines:
        if (speaker, text) not in cache:
            cache[speaker, text] = parse_voice(speaker).render(text)
        audio = cache[speaker, text]
        start, end = voiced_span(audio)
        audio = audio[start:end]
        turns.append({"start": at / SAMPLE_RATE, "end": (at + len(audio)) / SAMPLE_RATE,
                      "speaker": speaker})
        gap = rng.uniform(0.6, 1.4) if pauses else rng.uniform(0.0, 0.15)
        pieces += [audio, np.zeros(int(gap * SAMPLE_RATE), np.int16)]
        at += len(audio) + int(gap * SAMPLE_RATE)
        speaker = rng.choice([v for v in voices if v != speaker] or voices)
    pieces.append(np.zeros(SAMPLE_RATE, np.int16))
    x = np.concatenate(pieces).astype(np.float32) / 32768.0
    x = add_noise(x, SNR_DB, noise_rng)
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16), turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=sorted(POOLS), required=True)
    parser.add_argument("--out", default="runs/voices")
    parser.add_argument("--streams", type=int, default=3, help="streams per voices and pauses")
    parser.add_argument("--single-minutes", type=float, default=3.0,
                        help="length of each voice's stream alone")
    args = parser.parse_args()
    out = Path(args.out) / args.split
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"voices-{args.split}")
    noise_rng = np.random.default_rng(7 if args.split == "dev" else 11)
    texts, cache = sentences(args.split), {}
    plan = [(n, pauses, k) for n in (2, 3, 4) for pauses in (True, False)
            for k in range(args.streams)]
    for n, pauses, k in plan:
        voices = rng.sample(POOLS[args.split], n)
        audio, turns = stream(voices, rng.sample(texts, TURNS), pauses, rng, noise_rng, cache)
        write(out / f"v{n}-{'pauses' if pauses else 'nopauses'}-{k}", audio, turns, voices,
              pauses)
        print(f"{args.split} {n} voices, pauses={pauses}, #{k}: {len(audio) / SAMPLE_RATE:.0f} s")
    for k, voice in enumerate(POOLS[args.split]):
        lines: list[str] = []
        while sum(len(t.split()) for t in lines) / 2.6 < args.single_minutes * 60:  # ~2.6 words/s
            lines += rng.sample(texts, min(len(texts), 10))
        audio, turns = stream([voice], lines, True, rng, noise_rng, cache)
        write(out / f"v1-single-{k}", audio, turns, [voice], True)
        print(f"{args.split} one voice ({voice}): {len(audio) / SAMPLE_RATE / 60:.1f} min")


def write(stem: Path, audio: np.ndarray, turns: list[dict], voices: list[str],
          pauses: bool) -> None:
    sf.write(stem.with_suffix(".wav"), audio, SAMPLE_RATE, subtype="PCM_16")
    stem.with_suffix(".json").write_text(json.dumps(
        {"voices": voices, "turns": turns, "pauses": pauses, "snr_db": SNR_DB}, indent=1))


if __name__ == "__main__":
    main()
