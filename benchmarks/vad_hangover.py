"""How long a silence should end an utterance: the VAD's hangover against wrong cuts.

Streams are made from a speech manifest's utterances (each a whole sentence), one after another
with a pause between them drawn from `--gaps` (turn-taking pauses in meetings are mostly short),
under white noise at `--snr-db`; with several manifests (voices), consecutive utterances take
turns between them, as a two-person stream would. Each stream goes through `VadSegmenter` with
every hangover of `--hangovers-ms`, and is scored against where the utterances really are:

- *split*: an utterance cut into more than one segment (a pause inside the sentence, at a comma,
  outlasted the hangover);
- *merged*: a segment holding more than one utterance (the pause between two was shorter than
  the hangover);
- the mean time from an utterance's last voiced frame to its segment's close, which every final
  waits.

    .venv/bin/python benchmarks/vad_hangover.py runs/eval/meet-dev-slt/manifest.jsonl \\
        runs/eval/meet-dev-rms/manifest.jsonl --hangovers-ms 200 300 400 500 600
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from streamre import SAMPLE_RATE
from streamre.audio import Segment, SpeechEnd, VadConfig, VadSegmenter, read_audio
from streamre.training.data import read_manifest


def streams(voices: list[list[np.ndarray]], gaps: tuple[float, float], snr_db: float,
            seconds: float, seed: int) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
    """Streams of about `seconds`, each with its utterances' (start, end) samples."""
    rng = np.random.default_rng(seed)
    order = [(v, i) for i in range(max(map(len, voices))) for v in range(len(voices))
             if i < len(voices[v])]
    made, parts, spans, total = [], [], [], 0
    for v, i in order:
        gap = np.zeros(int(SAMPLE_RATE * rng.uniform(*gaps)), np.int16)
        parts += [gap, voices[v][i]]
        spans.append((total + len(gap), total + len(gap) + len(voices[v][i])))
        total += len(gap) + len(voices[v][i])
        if total >= seconds * SAMPLE_RATE:
            made.append((_noisy(np.concatenate(parts + [np.zeros(SAMPLE_RATE, np.int16)]),
                                snr_db, rng), spans))
            parts, spans, total = [], [], 0
    return made


def trimmed(audio: np.ndarray, floor: int = 200) -> np.ndarray:
    """The utterance without the synthesiser's own silence at either end, so the pauses
    between utterances are the ones drawn."""
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > floor)
    return audio[loud[0]:loud[-1] + 1] if len(loud) else audio


def _noisy(audio: np.ndarray, snr_db: float, rng) -> np.ndarray:
    signal = audio.astype(np.float64)
    power = np.mean(signal[signal != 0] ** 2) if np.any(signal) else 1.0
    noise = rng.standard_normal(len(signal)) * np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(signal + noise, -32768, 32767).astype(np.int16)


def score(config: VadConfig, audio: np.ndarray, spans: list[tuple[int, int]]) -> dict:
    segmenter = VadSegmenter(config)
    events = []
    for offset in range(0, len(audio), 640):  # 40 ms frames, as the browser sends them
        events += segmenter.feed(audio[offset:offset + 640])
    events += segmenter.flush()
    segments = [e for e in events if isinstance(e, Segment)]
    ends = [e.sample for e in events if isinstance(e, SpeechEnd)]

    def holds(segment: Segment, span: tuple[int, int]) -> bool:  # most of the span inside
        inside = min(segment.end, span[1]) - max(segment.start, span[0])
        return inside > 0.2 * (span[1] - span[0]) or inside > SAMPLE_RATE // 2

    split = sum(sum(holds(s, span) for s in segments) > 1 for span in spans)
    merged = sum(sum(holds(s, span) for span in spans) > 1 for s in segments)
    missed = sum(not any(holds(s, span) for s in segments) for span in spans)
    waits = [(s.end - e) / SAMPLE_RATE for s in segments for e in ends
             if s.start < e <= s.end and not s.forced_split]
    return {"utterances": len(spans), "segments": len(segments), "split": split,
            "merged": merged, "missed": missed, "close_wait_s": float(np.mean(waits))
            if waits else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifests", nargs="+", help="speech manifests, one per voice")
    parser.add_argument("--hangovers-ms", type=int, nargs="+", default=[200, 300, 400, 500, 600])
    parser.add_argument("--gaps", default="0.2,1.2", help="pause between utterances, s: LO,HI")
    parser.add_argument("--snr-db", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=120.0, help="length of each stream")
    parser.add_argument("--out", default="benchmarks/results/vad_hangover")
    args = parser.parse_args()
    voices = [[trimmed(read_audio(e.audio)) for e in read_manifest(m)] for m in args.manifests]
    gaps = tuple(float(g) for g in args.gaps.split(","))
    made = streams(voices, gaps, args.snr_db, args.seconds, seed=0)
    rows = []
    for hangover in args.hangovers_ms:
        config = replace(VadConfig(), hangover_ms=hangover)
        totals: dict = {}
        for audio, spans in made:
            for key, value in score(config, audio, spans).items():
                totals.setdefault(key, []).append(value)
        row = {"hangover_ms": hangover, **{k: sum(v) for k, v in totals.items()
                                           if k != "close_wait_s"},
               "close_wait_s": round(float(np.nanmean(totals["close_wait_s"])), 3)}
        row["split_or_merged_share"] = round((row["split"] + row["merged"])
                                             / row["utterances"], 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"manifests": args.manifests, "gaps_s": gaps, "snr_db": args.snr_db,
            "streams": len(made), "seconds_per_stream": args.seconds}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    table = ("| hangover ms | utterances | segments | split | merged | missed | "
             "split or merged | close wait s |\n|" + "---|" * 8 + "\n" + "".join(
                 f"| {r['hangover_ms']} | {r['utterances']} | {r['segments']} | {r['split']} | "
                 f"{r['merged']} | {r['missed']} | {r['split_or_merged_share']:.1%} | "
                 f"{r['close_wait_s']:.2f} |\n" for r in rows))
    out.with_suffix(".md").write_text(
        f"{len(made)} streams of about {args.seconds:.0f} s from {', '.join(args.manifests)}, "
        f"pauses of {gaps[0]}-{gaps[1]} s, white noise at {args.snr_db:g} dB SNR.\n\n" + table)
    print(table)


if __name__ == "__main__":
    main()
