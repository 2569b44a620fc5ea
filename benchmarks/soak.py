"""Soak: clients come and go against a live `streamre serve` for a set time, on loopback only.

Workers cycle through three kinds of client: a producer that streams speech and stops cleanly
(it must get exactly one `triplets` per `segment`, then `done` and close 1000), a producer that
drops mid-utterance (a clean WebSocket close or a torn TCP connection), and a viewer that
subscribes (asking for the transcript so far), reads and leaves. Meanwhile the server's
resident memory is sampled. Reported: memory over time and its slope after warm-up, the
server's open sockets and event-loop tasks before and after, and every lost or doubled answer.
Every segment is journaled with its transcript, so the journal grows while memory should not.

    .venv/bin/python benchmarks/soak.py --minutes 10 [--workers 6] [--model DIR] [--tag NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import signal
import time
import urllib.request
from pathlib import Path

import numpy as np
from stream_latency import meeting, start_server
from websockets.asyncio.client import connect

from streamre.protocol import start_message, stop_message, subscribe_message

RESULTS = Path(__file__).resolve().parent / "results"
MAX_SLOPE_MB_PER_MIN = 1.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def open_sockets(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            pass  # closed while we looked
    return count


def loop_tasks(port: int) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return int(float(re.search(r"^streamre_event_loop_tasks (\S+)$", text, re.M).group(1)))


async def stay(url: str, audio: np.ndarray, room: str, speed: float) -> dict:
    """Stream, stop, and check that every segment is answered exactly once before `done`."""
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps(start_message(room)))
        step = 640  # 40 ms frames
        for offset in range(0, len(audio), step):
            await ws.send(audio[offset:offset + step].tobytes())
            await asyncio.sleep(0.04 / speed)
        await ws.send(json.dumps(stop_message()))
        messages = [json.loads(m) async for m in ws]
    segments = [m["segment_id"] for m in messages if m["type"] == "segment"]
    answers = [m["segment_id"] for m in messages if m["type"] == "triplets"]
    ok = sorted(answers) == sorted(segments) and len(set(answers)) == len(answers) \
        and messages[-1]["type"] == "done" and ws.close_code == 1000
    return {"kind": "stay", "segments": len(segments), "answered": len(answers), "ok": ok}


async def drop(url: str, audio: np.ndarray, room: str, rng: random.Random) -> dict:
    """Stream part of the audio, then go away mid-utterance, politely or not."""
    cut = rng.randrange(16000, len(audio))
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps(start_message(room)))
        for offset in range(0, cut, 640):
            await ws.send(audio[offset:min(cut, offset + 640)].tobytes())
            await asyncio.sleep(0.01)
        if rng.random() < 0.5:
            ws.transport.abort()  # a torn connection, no close frame
    return {"kind": "drop", "ok": True}


async def view(url: str, room: str, rng: random.Random) -> dict:
    async with connect(url, max_size=None) as ws:
        # Every viewer reads the room's transcript so far: the record is read from SQLite.
        await ws.send(json.dumps(subscribe_message(room, history=True)))
        ready, snapshot = json.loads(await ws.recv()), json.loads(await ws.recv())
        try:
            async with asyncio.timeout(rng.uniform(0.2, 2.0)):
                async for _ in ws:
                    pass
        except TimeoutError:
            pass
    return {"kind": "view", "ok": ready["type"] == "ready" and snapshot["op"] == "snapshot"}


async def worker(url: str, clips: list[np.ndarray], deadline: float, seed: int,
                 speed: float, results: list[dict]) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        clip, room = clips[rng.randrange(len(clips))], f"soak{rng.randrange(3)}"
        kind = rng.choices(["stay", "drop", "view"], weights=[3, 2, 2])[0]
        try:
            if kind == "stay":
                results.append(await stay(url, clip, room, speed))
            elif kind == "drop":
                results.append(await drop(url, clip, room, rng))
            else:
                results.append(await view(url, room, rng))
        except Exception as e:  # a refused or broken connection is a finding, not a crash
            results.append({"kind": kind, "ok": False, "error": repr(e)})


async def sample_memory(pid: int, began: float, until: float, every_s: float,
                        samples: list[tuple[float, float]]) -> None:
    while time.monotonic() < until:
        samples.append((round((time.monotonic() - began) / 60, 3), round(rss_mb(pid), 2)))
        await asyncio.sleep(every_s)


def slope(samples: list[tuple[float, float]], after_min: float) -> float:
    points = [(t, m) for t, m in samples if t >= after_min]
    if len(points) < 3:
        return float("nan")
    t, m = np.array(points).T
    return float(np.polyfit(t, m, 1)[0])


async def soak(args) -> dict:
    clips = [meeting(8.0, seed) for seed in range(4)]
    server, port = start_server(args.model, args.workers + 4, [])
    url = f"ws://127.0.0.1:{port}/v1/stream"  # loopback only, by construction
    try:
        await asyncio.sleep(1.0)
        before = {"sockets": open_sockets(server.pid), "tasks": loop_tasks(port),
                  "rss_mb": rss_mb(server.pid)}
        began = time.monotonic()
        deadline = began + args.minutes * 60
        results: list[dict] = []
        samples: list[tuple[float, float]] = []
        sampler = asyncio.create_task(sample_memory(server.pid, began, deadline + 5, 5.0, samples))
        await asyncio.gather(*(worker(url, clips, deadline, seed, args.speed, results)
                               for seed in range(args.workers)))
        await asyncio.sleep(3.0)  # let the server finish what the last clients left behind
        after = {"sockets": open_sockets(server.pid), "tasks": loop_tasks(port),
                 "rss_mb": rss_mb(server.pid)}
        sampler.cancel()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    stays = [r for r in results if r["kind"] == "stay"]
    return {
        "minutes": args.minutes, "workers": args.workers, "clients": len(results),
        "by_kind": {k: sum(r["kind"] == k for r in results) for k in ("stay", "drop", "view")},
        "failed": [r for r in results if not r["ok"]][:20],
        "failures": sum(not r["ok"] for r in results),
        "segments_stayed": sum(r["segments"] for r in stays),
        "answers_stayed": sum(r["answered"] for r in stays),
        "before": before, "after": after,
        "rss_slope_mb_per_min": round(slope(samples, args.warmup_minutes), 3),
        "rss_samples": samples,
    }


def markdown(result: dict, meta: dict) -> str:
    ok = (result["failures"] == 0 and result["after"]["sockets"] <= result["before"]["sockets"]
          and result["after"]["tasks"] <= result["before"]["tasks"]
          and result["rss_slope_mb_per_min"] < MAX_SLOPE_MB_PER_MIN)
    return "\n".join([
        f"Soak, {meta['date']}, {meta['cpus']} CPUs, model {meta['model']}: {result['minutes']} min, "
        f"{result['workers']} workers, {result['clients']} clients "
        f"({result['by_kind']['stay']} stayed, {result['by_kind']['drop']} dropped mid-utterance, "
        f"{result['by_kind']['view']} viewers). {'PASS' if ok else 'FAIL'}.",
        "",
        "| measure | before | after |",
        "|---|---|---|",
        f"| server RSS MB | {result['before']['rss_mb']:.1f} | {result['after']['rss_mb']:.1f} |",
        f"| open sockets | {result['before']['sockets']} | {result['after']['sockets']} |",
        f"| event-loop tasks | {result['before']['tasks']} | {result['after']['tasks']} |",
        "",
        f"RSS slope after {meta['warmup_minutes']} min of warm-up: "
        f"{result['rss_slope_mb_per_min']:+.3f} MB/min (limit {MAX_SLOPE_MB_PER_MIN}). "
        f"Clients that stayed: {result['segments_stayed']} segments, "
        f"{result['answers_stayed']} answers; failures: {result['failures']}.",
        ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-minutes", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=6, help="clients connected at once")
    parser.add_argument("--speed", type=float, default=2.0,
                        help="how much faster than real time the staying producers send")
    parser.add_argument("--model", default="")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    result = asyncio.run(soak(args))
    meta = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "model": args.model
            or "bundled default", "python": platform.python_version(),
            "warmup_minutes": args.warmup_minutes}
    name = "soak" + (f"_{args.tag}" if args.tag else "")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, **result}, indent=2))
    (RESULTS / f"{name}.md").write_text(markdown(result, meta))
    print(markdown(result, meta))


if __name__ == "__main__":
    main()
