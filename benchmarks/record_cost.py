"""What the meeting's record costs a live meeting: the stream benchmark at N clients, run on
this tree and on an earlier revision (one without segment journaling), in alternating rounds
(each first in every other round) so the machine's drift falls on both. Reports each round's
p95 latency (segment end to its `triplets` message, on the client) and the ratio of the
medians.

    .venv/bin/python benchmarks/record_cost.py --before ed1a352 [--clients 8] [--rounds 2]
        [--seconds 30]

The earlier revision is checked out in a temporary git worktree and run with its own code
(`PYTHONPATH` and the working folder point at it); models and packages are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_stream_benchmark(tree: Path, clients: int, seconds: float, out: Path) -> dict:
    """One run of benchmarks/stream_latency.py from `tree`; its row for `clients`."""
    subprocess.run([sys.executable, str(tree / "benchmarks" / "stream_latency.py"),
                    "--clients", str(clients), "--seconds", str(seconds), "--together",
                    "--out", str(out)], cwd=tree, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(tree)})
    rows = json.loads((out / "stream_latency.json").read_text())["rows"]
    return next(r for r in rows if r["clients"] == clients)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the revision to compare with")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        before_tree = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before_tree),
                        args.before], check=True, capture_output=True)
        try:
            rounds = {"before": [], "now": []}
            for i in range(args.rounds):
                order = [("before", before_tree), ("now", ROOT)]
                for name, tree in order if i % 2 == 0 else order[::-1]:  # neither always first
                    row = run_stream_benchmark(tree, args.clients, args.seconds,
                                               Path(tmp) / f"{name}{i}")
                    rounds[name].append(row)
                    print(f"round {i + 1} {name}: p95 {row['latency_p95_ms']:.0f} ms, "
                          f"p50 {row['latency_p50_ms']:.0f} ms", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(before_tree)], check=False)

    p95 = {name: statistics.median(r["latency_p95_ms"] for r in rows)
           for name, rows in rounds.items()}
    result = {"meta": {"before": args.before, "clients": args.clients, "rounds": args.rounds,
                       "seconds_per_client": args.seconds, "cpus": os.cpu_count(),
                       "machine": platform.processor() or platform.machine()},
              "rounds": rounds, "p95_before_ms": p95["before"], "p95_now_ms": p95["now"],
              "ratio": p95["now"] / p95["before"]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "record_cost.json").write_text(json.dumps(result, indent=2))
    table = "".join(
        f"| {i + 1} | {b['latency_p95_ms']:.0f} | {n['latency_p95_ms']:.0f} |\n"
        for i, (b, n) in enumerate(zip(rounds["before"], rounds["now"], strict=True)))
    (out / "record_cost.md").write_text(
        f"{args.clients} clients streaming the same {args.seconds:.0f} s meeting in real time, "
        f"{os.cpu_count()} CPUs; p95 from a segment's end to its `triplets` message. Before: "
        f"{args.before} (no segment journal); now: this tree.\n\n"
        "| round | p95 before ms | p95 now ms |\n|---|---|---|\n" + table +
        f"\nMedian p95: {p95['before']:.0f} ms before, {p95['now']:.0f} ms now: ratio "
        f"{result['ratio']:.3f}.\n")
    print((out / "record_cost.md").read_text())


if __name__ == "__main__":
    main()
