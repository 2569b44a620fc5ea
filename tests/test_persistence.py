"""The graph survives: a server killed with SIGKILL mid-stream restarts with every announced
edge, and `streamre graph export` reads the same graph from its store."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.request

from websockets.asyncio.client import connect

from helpers import http_get, pcm_frames, start_server, start_text, stream
from streamre.graph import GraphSettings


def test_sigkill_mid_stream_loses_nothing_announced(fact_checkpoint, meeting_audio, tmp_path):
    data = tmp_path / "data"
    args = ("--model", str(fact_checkpoint), "--speech-facts", "speech", "--data-dir", str(data),
            "--graph-dedup-window-s", "0")
    server, port = start_server(*args)
    announced: dict[str, dict] = {}

    async def stream_until_first_fact():
        async with connect(f"ws://127.0.0.1:{port}/v1/stream") as ws:
            await ws.send(start_text(room="kill"))
            for frame in pcm_frames(meeting_audio, 16000):  # both utterances, no stop
                await ws.send(frame)
            async for text in ws:
                message = json.loads(text)
                if message["type"] == "graph" and message["op"] == "delta":
                    announced.update({e["id"]: e for e in message["edges"]})
                    announced["version"] = message["version"]
                    server.send_signal(signal.SIGKILL)  # right after an announcement
                    break

    try:
        asyncio.run(stream_until_first_fact())
        assert server.wait(30) == -signal.SIGKILL
    finally:
        server.kill()
        server.stderr.close()
    version = announced.pop("version")
    assert announced

    server, port = start_server(*args)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/rooms/kill/graph") as r:
            graph = json.loads(r.read())
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
        server.stderr.close()
    edges = {e["id"]: e for e in graph["edges"]}
    assert graph["version"] >= version
    for eid, edge in announced.items():
        assert eid in edges and edges[eid]["mentions"] >= edge["mentions"]

    exported = subprocess.run(
        [sys.executable, "-m", "streamre", "graph", "export", "--db", str(data / "streamre.db"),
         "--room", "kill"], capture_output=True, text=True, timeout=60)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == graph
    missing = subprocess.run(
        [sys.executable, "-m", "streamre", "graph", "export", "--db", str(data / "streamre.db"),
         "--room", "nope"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no room 'nope'" in missing.stderr


def test_a_restart_keeps_ids_versions_and_counts(make_server, meeting_audio, tmp_path):

    first = make_server(graph=GraphSettings(dedup_window_s=0), data_dir=str(tmp_path / "d"))
    asyncio.run(stream(first.url, meeting_audio, room="standup"))
    before = json.loads(http_get(first.http + "/v1/rooms/standup/graph")[2])
    first.stop()
    second = make_server(graph=GraphSettings(dedup_window_s=0), data_dir=str(tmp_path / "d"))
    after = json.loads(http_get(second.http + "/v1/rooms/standup/graph")[2])
    assert after == before and before["version"] == 2
    # The graph goes on from where it was: the next fact is version 3, same edge id.
    messages, _ = asyncio.run(stream(second.url, meeting_audio[: 16000 * 4], room="standup"))
    deltas = [m for m in messages if m["type"] == "graph" and m["op"] == "delta"]
    assert deltas[0]["version"] == 3 and deltas[0]["edges"][0]["id"] == before["edges"][0]["id"]
    assert deltas[0]["edges"][0]["mentions"] == 3
