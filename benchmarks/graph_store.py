"""The graph journal: latency of one durable append (it runs on the server's event loop, one
per answered segment) and how fast a restart replays a room.

    .venv/bin/python benchmarks/graph_store.py [--batches 5000] [--entities 400]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from streamre.graph import GraphSettings, Mention, RoomGraph
from streamre.graph.store import GraphStore
from streamre.triplets import Triplet

RELATIONS = ["Work_For", "Live_In", "OrgBased_In", "Located_In", "Kill"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=5000, help="answered segments")
    parser.add_argument("--entities", type=int, default=400, help="distinct names in the meeting")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()

    rng = random.Random(0)
    names = [f"{rng.choice(['David', 'Maria', 'Acme', 'World', 'North'])} "
             f"{rng.choice(['Chen', 'Lopez', 'Bank', 'Group', 'Labs'])} {i}"
             for i in range(args.entities)]
    with tempfile.TemporaryDirectory() as tmp:
        store = GraphStore(Path(tmp) / "streamre.db")
        room = RoomGraph("bench", GraphSettings())
        append_ms, apply_ms = [], []
        for i in range(args.batches):
            triplets = [Triplet(rng.choice(names), rng.choice(RELATIONS), rng.choice(names),
                                rng.uniform(0.3, 1.0)) for _ in range(rng.randint(1, 3))]
            mention = Mention("s", i)
            started = time.perf_counter()
            store.append("bench", triplets, mention, 3.0 * i)
            append_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            room.apply(triplets, mention, 3.0 * i)
            apply_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        rebuilt = store.load("bench")
        replay_s = time.perf_counter() - started
        assert rebuilt.to_json() == room.to_json()
        store.close()

    result = {
        "batches": args.batches, "entities": args.entities,
        "nodes": room.node_count, "edges": room.edge_count,
        "append_p50_ms": round(float(np.percentile(append_ms, 50)), 3),
        "append_p95_ms": round(float(np.percentile(append_ms, 95)), 3),
        "apply_p50_ms": round(float(np.percentile(apply_ms, 50)), 3),
        "apply_p95_ms": round(float(np.percentile(apply_ms, 95)), 3),
        "replay_s": round(replay_s, 2),
        "replay_batches_per_s": round(args.batches / replay_s),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "graph_store.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
