"""How soon a correction reaches the room: `streamre serve` on the bundled defaults with a
Mosquitto on loopback; typed lines make a meeting, then each line is corrected in turn while
two WebSocket viewers and one MQTT subscriber of the room listen. Reports, over every
correction, the time from sending the `PUT` to (a) its answer, (b) each viewer's rewritten
`transcript` message and (c) the subscriber's copy on `streamre/v1/{room}/transcript`, as
p50 / p95 / max, against the issue's target (1 s).

    .venv/bin/python benchmarks/correction_latency.py [--lines 20] [--rounds 2]

Writes `correction_latency.{json,md}` under `benchmarks/results/`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import tempfile
import time
import urllib.request
from pathlib import Path

import aiomqtt
from websockets.asyncio.client import connect

from cluster import start_broker
from stream_latency import percentile, start_server

from streamre.protocol import subscribe_message

ROOM = "corrections"
TARGET_MS = 1000.0
SENTENCES = ["Priya Natarajan works for Infosys.", "Nora Lindqvist lives in Gothenburg.",
             "Our contact at Heineken is Wojciech Zielinski.", "The weather was fine."]
FIXES = ["Priya Natarajan works for Wipro.", "Nora Lindqvist lives in Malmo.",
         "Our contact at Carlsberg is Wojciech Zielinski.", "Elena Petrova joined Spotify."]


def request(port: int, path: str, body: dict, method: str) -> dict:
    data = json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data,
                                 {"Content-Type": "application/json"}, method=method)
    with urllib.request.urlopen(req, timeout=30) as answer:
        return json.loads(answer.read())


async def viewer(port: int, heard: dict, ready: asyncio.Event) -> None:
    """A viewer: when each rewritten line (one with `heard`) came, by its text."""
    async with connect(f"ws://127.0.0.1:{port}/v1/stream", max_size=None) as ws:
        await ws.send(json.dumps(subscribe_message(ROOM)))
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "graph" and message["op"] == "snapshot":
                ready.set()
            elif message["type"] == "transcript" and "heard" in message:
                heard.setdefault(message["text"], time.monotonic())


async def subscriber(broker: str, heard: dict, ready: asyncio.Event) -> None:
    host, port = broker.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port)) as client:
        await client.subscribe(f"streamre/v1/{ROOM}/transcript", qos=1)
        ready.set()
        async for message in client.messages:
            line = json.loads(message.payload)
            if "heard" in line:
                heard.setdefault(line["text"], time.monotonic())


async def measure(port: int, broker: str, lines: list[tuple[str, int]], rounds: int) -> dict:
    views: list[dict] = [{}, {}]
    mqtt: dict = {}
    readies = [asyncio.Event() for _ in range(3)]
    tasks = [asyncio.create_task(viewer(port, views[i], readies[i])) for i in range(2)]
    tasks.append(asyncio.create_task(subscriber(broker, mqtt, readies[2])))
    for ready in readies:
        await asyncio.wait_for(ready.wait(), 30)
    samples = {"answer": [], "viewer": [], "mqtt": []}
    for r in range(rounds):
        for i, (session, segment) in enumerate(lines):
            text = f"{FIXES[i % len(FIXES)]} Round {r}, line {i}."
            sent = time.monotonic()
            await asyncio.to_thread(request, port,
                                    f"/v1/rooms/{ROOM}/transcript/{session}/{segment}",
                                    {"text": text, "by": "bench"}, "PUT")
            samples["answer"].append((time.monotonic() - sent) * 1000)
            deadline = sent + 10
            while time.monotonic() < deadline and not (
                    all(text in v for v in views) and text in mqtt):
                await asyncio.sleep(0.005)
            for v in views:
                samples["viewer"].append((v.get(text, float("inf")) - sent) * 1000)
            samples["mqtt"].append((mqtt.get(text, float("inf")) - sent) * 1000)
            await asyncio.sleep(max(0.0, sent + 0.6 - time.monotonic()))  # the server's rate
    for task in tasks:
        task.cancel()
    return {name: {"p50_ms": percentile(v, 50), "p95_ms": percentile(v, 95), "max_ms": max(v),
                   "n": len(v)} for name, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    broker_process, broker = start_broker(folder / "broker")
    server, port = start_server("", 16, ["--mqtt", broker])
    try:
        answer = request(port, f"/v1/rooms/{ROOM}/notes",
                         {"text": " ".join(SENTENCES[i % len(SENTENCES)]
                                           for i in range(args.lines)), "speaker": "ana"},
                         "POST")
        lines = [(answer["session_id"], s["segment_id"]) for s in answer["sentences"]]
        result = asyncio.run(measure(port, broker, lines, args.rounds))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        broker_process.terminate()
    result = {"meta": {"lines": len(lines), "rounds": args.rounds, "cpus": os.cpu_count(),
                       "machine": platform.processor() or platform.machine(),
                       "target_ms": TARGET_MS}, **result}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "correction_latency.json").write_text(json.dumps(result, indent=2))
    rows = "".join(f"| {name} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['max_ms']:.0f} | "
                   f"{r['n']} |\n" for name, r in result.items() if name != "meta")
    table = (f"{len(lines) * args.rounds} corrections of typed lines, the bundled reader reading "
             "each again; two viewers and one MQTT subscriber on loopback (ms from the PUT):\n\n"
             "| reaches | p50 | p95 | max | n |\n|---|---|---|---|---|\n" + rows)
    (out / "correction_latency.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
