"""Model-level speed: latency and real-time factor against utterance length and batch size.

Each cell runs the extractor (the same call the server's engine makes) on a batch of B segments
of L seconds of synthesised speech, `--repeats` times after one warm-up call. Reports the call's
latency (p50, p95), the real-time factor (call time / seconds of audio in the batch), throughput
(seconds of audio per second) and the speed-up of batch B over one segment at a time. Writes
JSON, a Markdown table and a PNG plot.

    .venv/bin/python benchmarks/model_latency.py [--model DIR] [--device cpu|cuda] [--dtype auto]
        [--ensemble]
        [--lengths 1 2 5 10 20] [--batch-sizes 1 2 4 8 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from streamre.audio import read_audio
from streamre.model.extractor import ModelExtractor

TEXT = ("David Chen works for the World Bank in Washington. Maria Lopez lives in Boston and works "
        "for Acme. The budget review moves to Thursday after the board meeting. John Smith was "
        "born in London. Oswald killed Kennedy in Dallas, Texas. The plant of General Motors is "
        "in Detroit, Michigan. Anna Berg is a reporter for the Boston Globe.")


def speech(seconds: float) -> np.ndarray:
    """At least `seconds` of espeak-ng speech, 16 kHz int16 (the text repeated as needed)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-s", "160", "-w", str(path), TEXT], check=True)
        once = read_audio(path)
    return np.tile(once, int(np.ceil(seconds * 16000 / len(once))) + 1)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--lengths", type=float, nargs="+", default=[1, 2, 5, 10, 20])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ensemble", action="store_true",
                        help="a model trained in element orders: every order, voting")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--tag", default="", help="suffix for the output files (e.g. h100)")
    args = parser.parse_args()

    extractor = ModelExtractor.load(args.model or None, args.device, args.threads, dtype=args.dtype,
                                    ensemble=args.ensemble)
    extractor.warmup()
    source = speech(max(args.lengths) * max(args.batch_sizes) / 4 + max(args.lengths))
    rng = np.random.default_rng(0)
    rows = []
    for length in args.lengths:
        n = int(length * 16000)
        for batch in args.batch_sizes:
            # Different stretches of speech per segment, all exactly `length` long.
            starts = rng.integers(0, len(source) - n, size=batch)
            segments = [source[s:s + n] for s in starts]
            extractor.extract(segments)  # warm-up for this shape
            times = []
            for _ in range(args.repeats):
                began = time.perf_counter()
                extractor.extract(segments)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - began)
            p50 = percentile(times, 50)
            rows.append({"length_s": length, "batch": batch, "latency_p50_ms": p50 * 1000,
                         "latency_p95_ms": percentile(times, 95) * 1000,
                         "rtf": p50 / (length * batch), "audio_s_per_s": length * batch / p50})
            print(json.dumps(rows[-1]), flush=True)
    single = {r["length_s"]: r["audio_s_per_s"] for r in rows if r["batch"] == 1}
    for r in rows:
        r["speedup_vs_batch_1"] = r["audio_s_per_s"] / single[r["length_s"]] \
            if r["length_s"] in single else None

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "model_latency" + (f"_{args.tag}" if args.tag else "")
    meta = {"model": extractor.name + (" (ensemble)" if args.ensemble else ""),
            "device": args.device, "dtype": str(extractor.model.dtype),
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "threads": args.threads, "repeats": args.repeats,
            "parameters": sum(p.numel() for p in extractor.model.parameters())}
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    header = ("| length s | batch | p50 ms | p95 ms | RTF | audio s/s | speed-up vs batch 1 |\n|"
              + "---|" * 7 + "\n")
    lines = "".join(
        f"| {r['length_s']:g} | {r['batch']} | {r['latency_p50_ms']:.0f} | "
        f"{r['latency_p95_ms']:.0f} | {r['rtf']:.3f} | {r['audio_s_per_s']:.1f} | "
        + (f"{r['speedup_vs_batch_1']:.2f}x |\n" if r["speedup_vs_batch_1"] else "- |\n")
        for r in rows)
    (out / f"{name}.md").write_text(
        f"Model {meta['model']} ({meta['parameters'] / 1e6:.1f} M parameters), {args.device}, "
        f"{meta['dtype']}, {meta['cpus']} CPUs, p50 of {args.repeats} calls.\n\n" + header + lines)
    plot(rows, meta, out / f"{name}.png")
    print((out / f"{name}.md").read_text())


def plot(rows: list[dict], meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for batch in sorted({r["batch"] for r in rows}):
        cells = [r for r in rows if r["batch"] == batch]
        left.plot([r["length_s"] for r in cells], [r["latency_p50_ms"] for r in cells], "o-",
                  label=f"batch {batch}")
    left.set(xlabel="utterance length (s)", ylabel="call latency p50 (ms)",
             title="latency against length")
    left.legend()
    for length in sorted({r["length_s"] for r in rows}):
        cells = [r for r in rows if r["length_s"] == length]
        right.plot([r["batch"] for r in cells], [r["rtf"] for r in cells], "o-",
                   label=f"{length:g} s")
    right.set(xlabel="batch size", ylabel="real-time factor (lower is faster)", xscale="log",
              yscale="log", title="real-time factor against batch size")
    right.set_xticks(sorted({r["batch"] for r in rows}))
    right.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    right.legend()
    fig.suptitle(f"{meta['model']} on {meta['device']} ({meta['dtype']}, {meta['cpus']} CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
