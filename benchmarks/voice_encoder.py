"""The speaker encoder's cost per segment (`serve --voices on`): milliseconds per segment against
segment length and batch size, as the engine calls it (one batch of the finals heard together).

Each cell embeds a batch of B segments of L seconds of synthesised speech `--repeats` times after
one warm-up call, on `--threads` torch threads; reports the call's p50 and p95 and the p50 per
segment. The issue's bound is 10 ms a segment on 2 cores, batched across streams. With `--turns`,
the call is the one `--voice-turns on` makes before a segment of 4.8 s or more is heard: its
windows every 0.4 s, to find where its voice changes (`streamre.voices.turns`). Writes JSON and
a Markdown table to benchmarks/results/ (`voice_encoder.*`, or `voice_encoder_turns.*`).

    .venv/bin/python benchmarks/voice_encoder.py [--lengths 1.5 3 6 12] [--batch-sizes 1 4 8 16]
        [--repeats 20] [--threads 2] [--turns]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from streamre.corpus.voices import parse_voice
from streamre.voices.encoder import SpeakerEncoder
from streamre.voices.turns import window_starts

TEXT = ("The budget review moves to Thursday after the board meeting, and the office in Lisbon "
        "opens next month with twelve people from the Porto team.")
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[1.5, 3, 6, 12])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--turns", action="store_true",
                        help="time the windows that find turns, not the segment's embedding")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    speech = parse_voice("flite:kal16").render(TEXT)
    speech = np.tile(speech, int(np.ceil(max(args.lengths) * 16000 / len(speech))))
    encoder = SpeakerEncoder()
    name = "voice_encoder_turns" if args.turns else "voice_encoder"

    def call(segments: list[np.ndarray]) -> object:
        return encoder.embed_windows(segments, window_starts) if args.turns \
            else encoder.embed(segments)

    rows = []
    for length in args.lengths:
        for batch in args.batch_sizes:
            segments = [np.roll(speech, 4000 * i)[:int(length * 16000)] for i in range(batch)]
            call(segments)
            took = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                call(segments)
                took.append((time.perf_counter() - started) * 1000)
            p50, p95 = np.percentile(took, [50, 95])
            rows.append({"seconds": length, "batch": batch, "call_p50_ms": round(p50, 1),
                         "call_p95_ms": round(p95, 1),
                         "per_segment_p50_ms": round(p50 / batch, 2)})
            print(json.dumps(rows[-1]), flush=True)
    machine = f"{platform.processor() or platform.machine()}, {args.threads} torch threads"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"machine": machine, "rows": rows},
                                                           indent=1))
    table = ["| segment | batch | call p50 / p95 ms | per segment p50 ms |", "|---|---|---|---|"]
    table += [f"| {r['seconds']:g} s | {r['batch']} | {r['call_p50_ms']} / {r['call_p95_ms']} | "
              f"{r['per_segment_p50_ms']} |" for r in rows]
    (RESULTS / f"{name}.md").write_text(f"Machine: {machine}\n\n" + "\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
