"""A cluster of `streamre serve` instances on this machine, with a real Mosquitto on loopback.

1. Propagation: a producer streams a meeting in real time into instance A, and types a line
   every `--line-every-s`; a viewer on A and a viewer on B follow the room (graph and
   transcript). For every segment, the time from A's viewer receiving its transcript line to
   B's viewer receiving it (p50, p95), beside the segment-end-to-viewer times on each.
2. Capacity: N real-time streams held by one instance, then split over two (rooms shared
   through the broker); per level the p95 from a segment's end to its `triplets`. "Held" is
   the largest N whose p95 stays under 1.5 s; the ratio is two instances' over one's.

Both instances share this machine's cores, so the ratio says what clustering costs or gains
on one box; on separate machines each instance has its own.

    .venv/bin/python benchmarks/cluster.py [--seconds 60] [--levels 4 8 12] [--tag T]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stream_latency import TARGET_P95_MS, client, meeting, percentile, start_server
from websockets.asyncio.client import connect

from streamre.protocol import start_message, stop_message, subscribe_message, text_message

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return broker, f"mqtt://127.0.0.1:{port}"


def start_instance(name: str, folder: Path, broker: str | None, extra: list[str]
                   ) -> tuple[subprocess.Popen, int]:
    """An instance on its own data dir, in the cluster if given a broker; room for 40
    clients at once."""
    cluster = ["--mqtt", broker, "--cluster", "bench"] if broker else []
    return start_server("", 128, ["--server-id", name, "--data-dir", str(folder / name),
                                  "--max-pending", "64", "--max-producers", "64", *cluster,
                                  *extra])


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(60)


class Viewer:
    """Follows a room; when each transcript line and graph update arrived (monotonic)."""

    def __init__(self) -> None:
        self.lines: dict[tuple[str, int], float] = {}
        self.ready = asyncio.Event()

    async def run(self, port: int, room: str, stop_: asyncio.Event) -> None:
        async with connect(f"ws://127.0.0.1:{port}/v1/stream", max_size=None) as ws:
            await ws.send(json.dumps(subscribe_message(room, history=True)))
            reader = asyncio.create_task(self._read(ws))
            await stop_.wait()
            reader.cancel()

    async def _read(self, ws) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "graph" and message["op"] == "snapshot":
                self.ready.set()
            elif message["type"] == "transcript":
                self.lines[(message["session_id"], message["segment_id"])] = time.monotonic()


async def typist(port: int, room: str, every_s: float, done: asyncio.Event) -> int:
    """A producer that types a sentence every `every_s` seconds until `done`."""
    sentences = ["Priya Natarajan works for Infosys.", "Lars Berg lives in Oslo.",
                 "Amara Okafor works for Dangote in Lagos.", "Kenji Sato lives in Osaka."]
    sent = 0
    async with connect(f"ws://127.0.0.1:{port}/v1/stream", max_size=None) as ws:
        await ws.send(json.dumps(start_message(room, 16000, "typist")))

        async def read() -> None:  # the answers, read as they come (or pings time out)
            async for raw in ws:
                if json.loads(raw)["type"] == "done":
                    return
        reader = asyncio.create_task(read())
        while not done.is_set():
            await ws.send(json.dumps(text_message(sentences[sent % len(sentences)])))
            sent += 1
            await asyncio.sleep(every_s)
        await ws.send(json.dumps(stop_message()))
        await reader
    return sent


async def propagation(folder: Path, seconds: float, line_every_s: float, extra: list[str]
                      ) -> dict:
    broker, url = start_broker(folder)
    (a, port_a), (b, port_b) = [start_instance(n, folder, url, extra) for n in ("a", "b")]
    try:
        await asyncio.sleep(2)  # the links join
        on_a, on_b, done = Viewer(), Viewer(), asyncio.Event()
        watching = [asyncio.create_task(v.run(p, "lat", done))
                    for v, p in ((on_a, port_a), (on_b, port_b))]
        await asyncio.gather(on_a.ready.wait(), on_b.ready.wait())
        typing = asyncio.create_task(typist(port_a, "lat", line_every_s, done))
        spoken = await client(f"ws://127.0.0.1:{port_a}/v1/stream", meeting(seconds, 3),
                              "lat", 40)
        done.set()
        await typing
        await asyncio.sleep(2)  # the last lines travel
        for task in watching:
            task.cancel()
    finally:
        stop([a, b])
        broker.terminate()
    gaps = [(on_b.lines[k] - t) * 1000 for k, t in on_a.lines.items() if k in on_b.lines]
    return {"segments_on_a": len(on_a.lines), "reached_b": len(gaps),
            "a_to_b_p50_ms": percentile(gaps, 50), "a_to_b_p95_ms": percentile(gaps, 95),
            "a_to_b_max_ms": max(gaps) if gaps else float("nan"),
            "spoken_segments": len(spoken),
            "segment_end_to_triplets_p95_ms": percentile(
                [m["client_latency_ms"] for m in spoken], 95)}


async def capacity_level(folder: Path, n: int, instances: int, seconds: float,
                         extra: list[str]) -> dict:
    broker, url = start_broker(folder) if instances > 1 else (None, None)
    started = [start_instance(f"i{n}-{k}", folder, url, extra) for k in range(instances)]
    try:
        await asyncio.sleep(2 if instances > 1 else 0)
        per_client = await asyncio.gather(*(
            client(f"ws://127.0.0.1:{started[i % instances][1]}/v1/stream",
                   meeting(seconds, i), f"room{i % 4}", 40) for i in range(n)))
    finally:
        stop([p for p, _ in started])
        if broker:
            broker.terminate()
    latencies = [m["client_latency_ms"] for c in per_client for m in c]
    return {"streams": n, "instances": instances, "segments": len(latencies),
            "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95)}


def held(rows: list[dict], instances: int) -> int:
    return max([r["streams"] for r in rows if r["instances"] == instances
                and r["p95_ms"] <= TARGET_P95_MS], default=0)


async def run(args) -> dict:
    extra = args.serve_args.split()
    folder = Path(tempfile.mkdtemp(prefix="streamre-cluster-bench-"))
    try:
        result = {"propagation": await propagation(folder / "p", args.seconds,
                                                   args.line_every_s, extra)}
        print(json.dumps(result["propagation"]), flush=True)
        rows = []
        for n in args.levels:
            for instances in (1, 2):
                rows.append(await capacity_level(folder / f"c{n}{instances}", n, instances,
                                                 args.capacity_seconds, extra))
                print(json.dumps(rows[-1]), flush=True)
        result["capacity"] = rows
        one, two = held(rows, 1), held(rows, 2)
        result["held"] = {"one_instance": one, "two_instances": two,
                          "ratio": two / one if one else float("nan")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="speech streamed into A")
    parser.add_argument("--line-every-s", type=float, default=1.0)
    parser.add_argument("--levels", type=int, nargs="+", default=[4, 8, 12])
    parser.add_argument("--capacity-seconds", type=float, default=30.0)
    parser.add_argument("--serve-args", default="")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    result["meta"] = {"machine": platform.processor() or platform.machine(),
                      "cores": __import__("os").cpu_count(), "args": vars(args)}
    name = "cluster" + (f"_{args.tag}" if args.tag else "")
    out = Path(args.out)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2))
    (out / f"{name}.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    p = result["propagation"]
    lines = ["# Cluster: propagation and capacity", "",
             f"Machine: {result['meta']['cores']} cores; `{' '.join(sys.argv[1:])}`", "",
             "## A fact said on A, on B's viewers", "",
             "| segments on A | reached B | A→B p50 | A→B p95 | max |", "|---|---|---|---|---|",
             f"| {p['segments_on_a']} | {p['reached_b']} | {p['a_to_b_p50_ms']:.0f} ms | "
             f"{p['a_to_b_p95_ms']:.0f} ms | {p['a_to_b_max_ms']:.0f} ms |", "",
             "## Real-time streams: one instance against two", "",
             "| streams | instances | segments | p50 | p95 | p95, two over one |",
             "|---|---|---|---|---|---|"]
    one = {r["streams"]: r["p95_ms"] for r in result["capacity"] if r["instances"] == 1}
    lines += [f"| {r['streams']} | {r['instances']} | {r['segments']} | {r['p50_ms']:.0f} ms | "
              f"{r['p95_ms']:.0f} ms | "
              f"{r['p95_ms'] / one[r['streams']]:.2f} |" if r["instances"] == 2 else
              f"| {r['streams']} | 1 | {r['segments']} | {r['p50_ms']:.0f} ms | "
              f"{r['p95_ms']:.0f} ms | |" for r in result["capacity"]]
    h = result["held"]
    lines += ["", f"Held with p95 ≤ {TARGET_P95_MS:.0f} ms (of the levels tried): one instance "
              f"{h['one_instance']}, two {h['two_instances']} (ratio {h['ratio']:.2f}).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
