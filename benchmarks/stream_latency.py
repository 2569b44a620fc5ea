"""Server-level latency: N clients stream synthesised speech in real time over the WebSocket.

For each segment it measures, on the client, the time from the moment the segment's last sample
was spoken to the arrival of its `triplets` message, and divides it by the bare model time for
the same segment (the extractor alone, one segment per call, no server): the server's overhead.
"Flat" means p95 latency within 1.5x of the one-client p95 and under the 1.5 s target; the
largest N that stays flat is reported. With `--notes-per-s R`, notes are posted to the same
server over HTTP at R a second while the clients stream (the text channel under load), and
their latencies are reported beside. Writes JSON, a Markdown table and a PNG plot.

With `--together`, every client streams the same meeting, so their segments end at the same
moment: the worst case for the batcher. The bare time is the speech path's (`SpeechPath`): by
default Whisper hears and the text model reads, as `streamre serve` runs.

Live captions, on the client's clock (`--partials on off` runs every level both ways): the time
from a segment's last word (the VAD's `speech_end`) to its facts; the time from an utterance's
first voiced frame to its first `partial`; the share of utterances of 2.5 s or more captioned
while still spoken; and, for each word a partial shows, the time from when it was said to when
it was first shown. When a word was said is estimated: the utterance's words are taken as
evenly spaced over its voiced span (the synthetic voice speaks at a steady rate), and a partial
of k words is taken to show the first k.

    .venv/bin/python benchmarks/stream_latency.py --clients 1 2 4 8 [--model DIR] [--seconds 30]
        [--frame-ms 40] [--serve-args "--gather-ms 10"] [--notes-per-s 5] [--together]
        [--partials on off]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect

from streamre.audio import Segment, VadConfig, VadSegmenter, read_audio
from streamre.inference.speech_path import ResearchSettings, SpeechPath, SpeechSettings
from streamre.protocol import start_message, stop_message

SENTENCES = [
    "David Chen works for the World Bank in Washington.",
    "Maria Lopez lives in Boston and works for Acme.",
    "The budget review moves to Thursday after the board meeting.",
    "John Smith was born in London.",
]
FLAT_RATIO, TARGET_P95_MS = 1.5, 1500.0


def meeting(seconds: float, seed: int) -> tuple[np.ndarray, list[tuple[float, float, int]]]:
    """Utterances in random order with 0.8 to 2 s of silence between them, 16 kHz int16, and
    each utterance's (start s, end s, words)."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        voices = []
        for i, text in enumerate(SENTENCES):
            path = Path(tmp) / f"{i}.wav"
            subprocess.run(["espeak-ng", "-s", "165", "-w", str(path), text], check=True)
            voices.append(read_audio(path))
    parts, total, said = [], 0, []
    while total < seconds * 16000:
        gap = np.zeros(int(16000 * rng.uniform(0.8, 2.0)), np.int16)
        which = rng.integers(len(voices))
        parts += [gap, voices[which]]
        said.append(((total + len(gap)) / 16000, (total + len(gap) + len(voices[which])) / 16000,
                     len(SENTENCES[which].split())))
        total += len(parts[-1]) + len(gap)
    return np.concatenate(parts + [np.zeros(16000, np.int16)]), said


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def like_a_microphone(ws, audio: np.ndarray, began: float, frame_ms: int) -> None:
    """Send 16 kHz int16 `audio` in `frame_ms` frames, each once all of its audio has been
    captured (`began` + its end, on the monotonic clock), as a live microphone would."""
    step = 16000 * frame_ms // 1000
    for i, offset in enumerate(range(0, len(audio), step)):
        await asyncio.sleep(max(0.0, began + (i + 1) * frame_ms / 1000 - time.monotonic()))
        await ws.send(audio[offset:offset + step].tobytes())


async def client(url: str, audio: np.ndarray, room: str, frame_ms: int) -> list[dict]:
    """Stream in real time; return each triplets message with its client-side latency, and
    its utterance's captions (`partials`: seconds after the stream began, words) and voiced
    span (`voiced`: stream seconds)."""
    results, partials, voiced = [], [], []
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps(start_message(room, 16000)))
        began = time.monotonic()

        async def send():
            await like_a_microphone(ws, audio, began, frame_ms)
            await ws.send(json.dumps(stop_message()))

        sender = asyncio.create_task(send())
        async for text in ws:
            message = json.loads(text)
            now = time.monotonic() - began
            if message["type"] == "triplets":
                # The segment's last sample was spoken at began + end; the latency includes
                # waiting for its frame to fill, as with a live microphone.
                message["client_latency_ms"] = (now - message["end"]) * 1000
                ours = [p for p in partials if p[1] == message["start"]]
                spoken = [v for v in voiced if message["start"] <= v[0] < message["end"]]
                message["partials"] = [(at, words) for at, _, words in ours]
                message["voiced"] = (spoken[0][0], spoken[-1][1]) if spoken and \
                    spoken[-1][1] is not None else None
                message["word_latency_ms"] = (now - message["voiced"][1]) * 1000 \
                    if message["voiced"] else None
                results.append(message)
            elif message["type"] == "partial":
                partials.append((now, message["start"], len(message["text"].split())))
            elif message["type"] == "vad" and message["event"] == "speech_start":
                voiced.append((message["t"], None))
            elif message["type"] == "vad" and voiced:
                voiced[-1] = (voiced[-1][0], message["t"])
            elif message["type"] == "done":
                break
        await sender
    return results


def caption_figures(messages: list[dict], said: list[list[tuple[float, float, int]]]) -> dict:
    """Live captions on the client's clock (see the module): first partial after the
    utterance's start, captioned while spoken, and each shown word's delay."""
    first_ms, word_ms, long_ones, captioned = [], [], 0, 0
    for m in messages:
        if not m["voiced"]:
            continue
        start, end = m["voiced"]
        if m["partials"]:
            first_ms.append((m["partials"][0][0] - start) * 1000)
        if end - start >= 2.5:
            long_ones += 1
            captioned += any(at < end for at, _ in m["partials"])
        n = next((w for a, _, w in said[m["audio_index"]] if m["start"] <= a < m["end"]), 0)
        shown = 0
        for at, count in m["partials"]:
            for k in range(shown, min(count, n)):  # word k ends at this share of the span
                word_ms.append((at - (start + (k + 1) / n * (end - start))) * 1000)
            shown = max(shown, count)
    return {"first_partial_p50_ms": percentile(first_ms, 50),
            "first_partial_p95_ms": percentile(first_ms, 95),
            "captioned_while_spoken": captioned / long_ones if long_ones else float("nan"),
            "long_utterances": long_ones,
            "word_to_caption_p50_ms": percentile(word_ms, 50),
            "word_to_caption_p95_ms": percentile(word_ms, 95)}


def start_server(model: str, max_sessions: int, extra: list[str]) -> tuple[subprocess.Popen, int]:
    """`streamre serve` in its own process, as deployed; returns it and its port."""
    command = [sys.executable, "-m", "streamre", "serve", "--port", "0",
               "--max-sessions", str(max_sessions), "--data-dir", tempfile.mkdtemp(), *extra]
    if model:  # the aligned speech model, asked for as the server wants it
        command += ["--model", model, "--speech-facts", "speech"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if match := re.search(r"model .* ready on", line):
            break
        if match := re.search(r"listening on http://[\d.]+:(\d+)/", line):
            port = int(match.group(1))
    else:
        raise SystemExit(f"streamre serve exited with {process.wait()}")
    # Its log is read on to the end, so the pipe never fills and stalls the server.
    threading.Thread(target=process.stderr.read, daemon=True).start()
    return process, port


def post_note(port: int, text: str) -> float:
    """One note over HTTP; its round trip in ms (raises on any answer but 200)."""
    started = time.monotonic()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/rooms/notes/notes", json.dumps({"text": text}).encode(),
        {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()
    return (time.monotonic() - started) * 1000


async def notes(port: int, per_second: float, stop: asyncio.Event) -> list[float]:
    """Post notes at `per_second` until `stop`; each note's round trip, NaN if it failed."""
    pending, began, i = [], time.monotonic(), 0
    while not stop.is_set():
        await asyncio.sleep(max(0.0, began + i / per_second - time.monotonic()))
        pending.append(asyncio.create_task(asyncio.to_thread(
            post_note, port, SENTENCES[i % len(SENTENCES)])))
        i += 1
    results = await asyncio.gather(*pending, return_exceptions=True)
    return [r if isinstance(r, float) else float("nan") for r in results]


async def run_level(model: str, n: int, audio: list[np.ndarray], frame_ms: int,
                    extra: list[str], notes_per_s: float = 0.0) -> tuple[list[dict], list]:
    server, port = start_server(model, n + 4, extra)
    url = f"ws://127.0.0.1:{port}/v1/stream"
    stop = asyncio.Event()
    noting = asyncio.create_task(notes(port, notes_per_s, stop)) if notes_per_s else None
    try:
        per_client = await asyncio.gather(*(
            client(url, audio[i % len(audio)], f"room{i % 4}", frame_ms) for i in range(n)))
        stop.set()
        note_ms = await noting if noting else []
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    for i, messages in enumerate(per_client):
        for m in messages:
            m["audio_index"] = i % len(audio)
    return [m for c in per_client for m in c], note_ms


def bare_model_ms(extractor, audio: list[np.ndarray], vad: VadConfig
                  ) -> dict[tuple[int, float], float]:
    """Bare model time of every segment the server will cut, by (audio index, start in s)."""
    times = {}
    for index, samples in enumerate(audio):
        segmenter = VadSegmenter(vad)
        for s in segmenter.feed(samples) + segmenter.flush():
            if isinstance(s, Segment):
                started = time.perf_counter()
                extractor.extract([s.audio])
                times[(index, round(s.start / 16000, 2))] = (time.perf_counter() - started) * 1000
    return times


def level_row(n: int, partials: str, messages: list[dict], note_ms: list[float],
              bare: dict[tuple[int, float], float], said: list) -> dict:
    """One level's figures: latencies from the segment's end and from its last word, the
    server's own, the overhead over the bare model, captions, notes."""
    client_ms = [m["client_latency_ms"] for m in messages]
    word_ms = [m["word_latency_ms"] for m in messages if m["word_latency_ms"] is not None]
    ratios = [m["client_latency_ms"] / bare[key] for m in messages
              if (key := (m["audio_index"], round(m["start"], 2))) in bare]
    expected = sum(1 for i in range(n) for (index, _) in bare if index == i % len(said))
    return {
        "clients": n, "partials": partials, "segments": len(messages),
        "lost": expected - len(messages), "matched_segments": len(ratios),
        "latency_p50_ms": percentile(client_ms, 50), "latency_p95_ms": percentile(client_ms, 95),
        "last_word_p50_ms": percentile(word_ms, 50), "last_word_p95_ms": percentile(word_ms, 95),
        "server_latency_p95_ms": percentile([m["latency_ms"] for m in messages], 95),
        "queue_p95_ms": percentile([m["queue_ms"] for m in messages], 95),
        "infer_p50_ms": percentile([m["infer_ms"] for m in messages], 50),
        "batch_p50": percentile([m.get("batch_size", 1) for m in messages], 50),
        "batch_max": max((m.get("batch_size", 1) for m in messages), default=0),
        "bare_model_p50_ms": percentile(list(bare.values()), 50),
        "overhead_p50": percentile(ratios, 50), "overhead_p95": percentile(ratios, 95),
        **(caption_figures(messages, said) if partials == "on" else {}),
        "notes": len(note_ms), "notes_failed": int(np.isnan(note_ms).sum()) if note_ms else 0,
        "note_p50_ms": percentile([x for x in note_ms if x == x], 50),
        "note_p95_ms": percentile([x for x in note_ms if x == x], 95),
    }


def flat_up_to(rows: list[dict]) -> int:
    """The largest N such that every level up to it kept p95 flat and under the target."""
    base, best = rows[0]["latency_p95_ms"], 0
    for r in rows:
        if r["latency_p95_ms"] > min(base * FLAT_RATIO, TARGET_P95_MS):
            break
        best = r["clients"]
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--model", default="")
    parser.add_argument("--seconds", type=float, default=30.0, help="speech per client")
    parser.add_argument("--frame-ms", type=int, default=40,
                        help="audio per WebSocket frame (the browser client sends 40 ms)")
    parser.add_argument("--serve-args", default="", help="more `streamre serve` flags, quoted")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--tag", default="", help="suffix for the output files")
    parser.add_argument("--notes-per-s", type=float, default=0.0,
                        help="notes posted over HTTP each second while the clients stream")
    parser.add_argument("--together", action="store_true",
                        help="every client streams the same meeting: segments end together")
    parser.add_argument("--partials", nargs="+", default=["on"], choices=["on", "off"],
                        help="live captions on the server: each level is run once per value")
    args = parser.parse_args()
    extra = shlex.split(args.serve_args)

    meetings = [meeting(args.seconds, seed) for seed in range(1 if args.together else 4)]
    audio, said = [a for a, _ in meetings], [s for _, s in meetings]
    extractor = SpeechPath(SpeechSettings(device="cpu", speech_facts="speech" if args.model
                                          else "text"),
                           ResearchSettings(model=args.model)).load_speech()
    extractor.warmup()
    model_name = extractor.name
    bare = bare_model_ms(extractor, audio, VadConfig())
    del extractor  # the server has the CPUs to itself
    rows = []
    for partials in args.partials:
        for n in args.clients:
            messages, note_ms = asyncio.run(run_level(
                args.model, n, audio, args.frame_ms, [*extra, "--partials", partials],
                args.notes_per_s))
            rows.append(level_row(n, partials, messages, note_ms, bare, said))
            print(json.dumps(rows[-1]), flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "stream_latency" + (f"_{args.tag}" if args.tag else "")
    meta = {"model": model_name, "together": args.together,
            "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "seconds_per_client": args.seconds, "frame_ms": args.frame_ms,
            "serve_args": extra, "bare_model_segments": len(bare),
            "flat_up_to": {p: flat_up_to([r for r in rows if r["partials"] == p])
                           for p in args.partials},
            "notes_per_s": args.notes_per_s}
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (out / f"{name}.md").write_text(markdown(rows, meta, args, extra))
    plot(rows, meta, out / f"{name}.png")
    print((out / f"{name}.md").read_text())


def markdown(rows: list[dict], meta: dict, args, extra: list[str]) -> str:
    def pair(r: dict, a: str, b: str, unit: str = "") -> str:
        return "–" if a not in r else f"{r[a]:.0f} / {r[b]:.0f}{unit}"

    header = ("| clients | partials | segments (lost) | end → facts p50 / p95 ms | last word → "
              "facts p50 / p95 ms | server p95 ms | queue p95 ms | infer p50 ms | batch p50/max "
              "| overhead p50 / p95 | first partial p50 / p95 ms | captioned while spoken | "
              "word → caption p50 / p95 ms |\n|" + "---|" * 13 + "\n")
    lines = "".join(
        f"| {r['clients']} | {r['partials']} | {r['segments']} ({r['lost']}) | "
        f"{pair(r, 'latency_p50_ms', 'latency_p95_ms')} | "
        f"{pair(r, 'last_word_p50_ms', 'last_word_p95_ms')} | "
        f"{r['server_latency_p95_ms']:.0f} | {r['queue_p95_ms']:.0f} | {r['infer_p50_ms']:.0f} | "
        f"{r['batch_p50']:.0f}/{r['batch_max']} | "
        f"{r['overhead_p50']:.2f}x / {r['overhead_p95']:.2f}x | "
        f"{pair(r, 'first_partial_p50_ms', 'first_partial_p95_ms')} | "
        + (f"{r['captioned_while_spoken']:.0%} of {r['long_utterances']}" if "long_utterances"
           in r else "–")
        + f" | {pair(r, 'word_to_caption_p50_ms', 'word_to_caption_p95_ms')} |\n" for r in rows)
    notes = (f", {args.notes_per_s:g} notes a second posted meanwhile (note round trip p50/p95 "
             "ms: " + ", ".join(f"{r['note_p50_ms']:.0f}/{r['note_p95_ms']:.0f} at {r['clients']}"
                                for r in rows)
             + f"; failed: {sum(r['notes_failed'] for r in rows)})" if args.notes_per_s else "")
    return (f"Bare model {meta['model']} (the server runs `streamre serve` with the serve flags "
            f"below), {meta['cpus']} CPUs ({meta['machine']}), "
            f"{args.seconds:.0f} s of speech per client"
            + (", every client the same meeting (segments end together)" if args.together
               else "")
            + f", real-time pacing in {args.frame_ms} ms frames"
            + (f", serve {' '.join(extra)}" if extra else "") + notes
            + f". Latency flat up to {meta['flat_up_to']} clients. *End* is a segment's end, the "
            f"VAD's {VadConfig().hangover_ms} ms hangover after its *last word*; all on the "
            "client's clock.\n\n" + header + lines)


def plot(rows: list[dict], meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for partials in dict.fromkeys(r["partials"] for r in rows):
        mode = [r for r in rows if r["partials"] == partials]
        clients = [r["clients"] for r in mode]
        ax.plot(clients, [r["latency_p50_ms"] for r in mode], "o-",
                label=f"p50, partials {partials}")
        ax.plot(clients, [r["latency_p95_ms"] for r in mode], "o-",
                label=f"p95, partials {partials}")
    ax.plot(clients, [r["bare_model_p50_ms"] for r in mode], "--", label="bare model p50")
    ax.axhline(TARGET_P95_MS, color="grey", linestyle=":", label="p95 target")
    ax.set(xlabel="concurrent real-time streams", ylabel="segment end to triplets (ms)",
           title=f"{meta['model']}, {meta['cpus']} CPUs, {meta['frame_ms']} ms frames")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
