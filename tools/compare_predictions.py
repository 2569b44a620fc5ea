"""How far a split's RTE can be trusted: a bootstrap over its sentences.

    python tools/compare_predictions.py NEW.jsonl [BEFORE.jsonl] [--resamples 2000]

Each file is `streamre eval --predictions` output for the same data. Prints the normalised RTE
F1 of NEW with its 95 % interval (the sentences drawn again with replacement), and with BEFORE
the difference NEW - BEFORE with its interval, both scored on the same draws. On the 150
sentences of a meetings split the interval of one score is about ±0.08, and a change of two
points is not told from none (`docs/evaluation.md`).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamre.triplets import fact_key  # noqa: E402


def counts(path: str) -> list[tuple[int, int, int]]:
    """Each sentence's (facts right, facts predicted, gold facts), normalised as eval's RTE."""
    found = []
    for line in Path(path).read_text().splitlines():
        item = json.loads(line)
        gold = {fact_key(*t) for t in item["gold"]}
        predicted = {fact_key(p["head"], p["relation"], p["tail"]) for p in item["predicted"]}
        found.append((len(gold & predicted), len(predicted), len(gold)))
    return found


def f1(rows: list[tuple[int, int, int]]) -> float:
    right, predicted, gold = (sum(r[k] for r in rows) for k in range(3))
    return 2 * right / (predicted + gold) if predicted + gold else 0.0


def interval(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return values[int(0.025 * len(values))], values[int(0.975 * len(values)) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("new")
    parser.add_argument("before", nargs="?")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    new = counts(args.new)
    before = counts(args.before) if args.before else None
    if before is not None and len(before) != len(new):
        parser.error(f"{args.before} has {len(before)} sentences, {args.new} {len(new)}")
    rng = random.Random(args.seed)
    scores, differences = [], []
    for _ in range(args.resamples):
        drawn = [rng.randrange(len(new)) for _ in new]
        scores.append(f1([new[i] for i in drawn]))
        if before is not None:
            differences.append(scores[-1] - f1([before[i] for i in drawn]))
    low, high = interval(scores)
    print(f"RTE {f1(new):.3f}, 95 % interval {low:.3f} to {high:.3f} ({len(new)} sentences)")
    if before is not None:
        low, high = interval(differences)
        print(f"difference {f1(new) - f1(before):+.3f}, 95 % interval {low:+.3f} to {high:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
