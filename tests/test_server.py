"""PROTOCOL.md against a real server on a random port, with a real websockets client and speech
synthesised by espeak-ng."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import soxr
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from helpers import (FACT, FACT_TEXT, http_get, of_type, pcm_frames, receive_all, start_text, stream,
                     wait_for, wire)
from streamre.graph import GraphSettings, edge_id
from streamre.protocol import ping_message, subscribe_message
from streamre.server.session import Session

FACT_ID = edge_id(*FACT)


# -- the happy path -----------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [16000, 8000, 22050, 48000])
def test_stream_meeting_end_to_end(make_server, meeting_audio, rate):
    # The meeting says the fact twice, 2.5 s apart: with a 1 s window, two mentions of one edge.
    server = make_server(graph=GraphSettings(dedup_window_s=1.0))
    audio = meeting_audio if rate == 16000 else soxr.resample(meeting_audio, 16000, rate)
    messages, code = asyncio.run(stream(server.url, audio, rate, room="standup", speaker="alice"))

    assert code == 1000
    assert [m["type"] for m in messages[:2]] == ["ready", "graph"]
    ready, snapshot = messages[:2]
    assert ready["room"] == "standup" and ready["protocol"] == 1 and ready["session_id"]
    assert snapshot["op"] == "snapshot" and snapshot["version"] == 0
    assert messages[-1] == {"type": "done"}

    segments = of_type(messages, "segment")
    triplets = of_type(messages, "triplets")
    assert len(segments) == 2  # one per utterance
    # Exactly one `triplets` per segment, matching its id and times, before `done`.
    assert sorted(t["segment_id"] for t in triplets) == [s["segment_id"] for s in segments]
    for s, t in zip(segments, sorted(triplets, key=lambda t: t["segment_id"]), strict=True):
        assert (t["start"], t["end"]) == (s["start"], s["end"])
        assert {"latency_ms", "queue_ms", "infer_ms"} <= set(t) and 1 <= t["batch_size"] <= 8
        assert [(x["head"], x["relation"], x["tail"]) for x in t["triplets"]] == [FACT]
        assert 0 < t["triplets"][0]["confidence"] <= 1
        assert t["text"] == FACT_TEXT and t["source"] == "speech"
    vad = of_type(messages, "vad")
    assert [v["event"] for v in vad] == ["speech_start", "speech_end"] * 2
    assert [v["t"] for v in vad] == sorted(v["t"] for v in vad)
    # Utterances are at 1 s and after; times are stream seconds whatever the input rate.
    assert 0.5 < segments[0]["start"] < 1.0 < segments[0]["end"] < segments[1]["start"]

    deltas = [m for m in of_type(messages, "graph") if m["op"] == "delta"]
    assert [d["version"] for d in deltas] == [1, 2]
    # The edge keeps the sentences that stated it.
    assert deltas[-1]["edges"][0]["evidence"] == [
        {"session_id": ready["session_id"], "segment_id": s["segment_id"], "text": FACT_TEXT,
         "source": "speech"}
        for s in segments]
    assert deltas[-1]["edges"][0]["id"] == FACT_ID and deltas[-1]["edges"][0]["mentions"] == 2

    status, _, body = http_get(server.http + "/v1/rooms/standup/graph")
    graph = json.loads(body)
    assert status == 200 and graph["version"] == 2
    (edge,) = graph["edges"]
    assert edge["id"] == FACT_ID and edge["mentions"] == 2 and edge["speakers"] == ["alice"]


def test_http_routes(make_server):
    server = make_server()
    status, headers, body = http_get(server.http + "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok", "model": "fact", "asr": None,
                                                  "text_model": None, "device": "cpu"}
    status, headers, body = http_get(server.http + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"<html" in body
    status, headers, _ = http_get(server.http + "/app.js")
    assert status == 200 and "javascript" in headers["Content-Type"]
    assert http_get(server.http + "/../pyproject.toml")[0] == 404
    assert http_get(server.http + "/%00")[0] == 404  # NUL: once a 500 and a traceback
    assert http_get(server.http + "/" + "a" * 300)[0] == 414  # once ENAMETOOLONG, a 500
    assert http_get(server.http + "/x/" + "b" * 2000)[0] == 414
    for method in ("POST", "PUT", "DELETE", "FOO"):  # once all answered like GET
        request = urllib.request.Request(server.http + "/healthz", method=method)
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError(f"{method} was accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 405 and set(e.headers["Allow"].split(", ")) == {"GET", "HEAD"}
    # HEAD once carried a body; read raw, since an HTTP client would not read one.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b"".join(iter(lambda: raw.recv(65536), b""))
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: " in head.lower() and body == b""
    status, headers, body = http_get(server.http + "/vendor/cytoscape.min.js")  # from npm ci
    assert status == 200 and "javascript" in headers["Content-Type"] and len(body) > 100_000
    assert b"MIT" in http_get(server.http + "/vendor/cytoscape.LICENSE.txt")[2]
    assert http_get(server.http + "/vendor/../../app.py")[0] == 404
    assert http_get(server.http + "/v1/rooms/nowhere/graph")[0] == 404
    assert http_get(server.http + "/v1/stream")[0] == 426
    assert json.loads(http_get(server.http + "/v1/rooms")[2]) == []

    asyncio.run(stream(server.url, np.zeros(0, np.int16), room="empty"))
    rooms = json.loads(http_get(server.http + "/v1/rooms")[2])
    assert rooms == [{"room": "empty", "nodes": 0, "edges": 0, "version": 0, "clients": 0,
                      "refused_facts": 0}]
    status, headers, body = http_get(server.http + "/v1/rooms/empty/graph?format=graphml")
    assert status == 200 and "graphml" in headers["Content-Type"] and b"<graphml" in body
    assert http_get(server.http + "/v1/rooms/empty/graph?format=csv")[0] == 400

    status, headers, body = http_get(server.http + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert b'streamre_sessions_total{role="producer"} 1.0' in body
    assert b"streamre_segment_latency_seconds_bucket" in body


def test_healthz_waits_for_the_model(tiny_checkpoint, tmp_path):
    from streamre.config import ServeConfig
    from streamre.model.extractor import ModelExtractor
    from streamre.server.app import StreamServer

    async def scenario():
        release = asyncio.Event()
        loop = asyncio.get_running_loop()

        def slow_load():
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result(30)
            return ModelExtractor.load(str(tiny_checkpoint), "cpu")

        server = StreamServer(ServeConfig(port=0, data_dir=str(tmp_path)), slow_load)
        await server.start()
        url = f"http://127.0.0.1:{server.port}/healthz"
        before = await asyncio.to_thread(http_get, url)
        release.set()
        await asyncio.wait_for(server.engine.ready.wait(), 30)
        after = await asyncio.to_thread(http_get, url)
        await server.shutdown()
        return before, after

    before, after = asyncio.run(scenario())
    assert before[0] == 503 and json.loads(before[2])["status"] == "loading"
    assert after[0] == 200


# -- bad input and faults -----------------------------------------------------------------------

def test_audio_before_start_is_a_protocol_violation(make_server):
    server = make_server()

    async def scenario():
        async with connect(server.url) as ws:
            await ws.send(b"\x00\x01" * 160)
            messages = await receive_all(ws)
        return messages, ws.close_code

    messages, code = asyncio.run(scenario())
    assert messages[0]["type"] == "error" and messages[0]["code"] == "audio_before_start"
    assert code == 4400


def test_oversized_frame_closes_with_1009(make_server):
    server = make_server(max_message_bytes=4096)

    async def scenario():
        async with connect(server.url, max_size=None) as ws:
            await ws.send(start_text())
            await ws.send(b"\x00" * 4098)
            await receive_all(ws)
        return ws.close_code

    assert asyncio.run(scenario()) == 1009


def test_odd_byte_boundaries_lose_nothing(make_server, meeting_audio):
    server = make_server()
    data = meeting_audio.astype("<i2").tobytes()
    cuts = np.cumsum(np.random.default_rng(0).integers(1, 7000, 400))
    cuts = [0, *[int(c) for c in cuts if c < len(data)], len(data)]
    frames = [data[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    assert any(len(f) % 2 for f in frames)
    messages, code = asyncio.run(stream(server.url, meeting_audio, frames=frames))
    whole, _ = asyncio.run(stream(server.url, meeting_audio))

    def key(ms):
        return [(m["start"], m["end"]) for m in of_type(ms, "segment")]

    assert key(messages) == key(whole) and len(key(whole)) == 2 and code == 1000


def test_a_failed_model_call_is_answered_and_the_session_goes_on(make_server, fact_checkpoint,
                                                                 meeting_audio):
    from streamre.model.extractor import ModelExtractor

    class FailsOnce(ModelExtractor):
        """The real model, whose first call after warm-up fails (say, out of memory)."""
        calls = 0

        def extract(self, waveforms, vocabularies=None):
            FailsOnce.calls += 1
            if FailsOnce.calls == 2:
                raise RuntimeError("CUDA out of memory (simulated)")
            return super().extract(waveforms, vocabularies)

    # One segment per call, so the failure hits exactly the first segment.
    server = make_server(lambda: FailsOnce.load(str(fact_checkpoint), "cpu"), max_batch=1)
    messages, code = asyncio.run(stream(server.url, meeting_audio))
    first, second = sorted(of_type(messages, "triplets"), key=lambda m: m["segment_id"])
    assert first["triplets"] == [] and first["error"] == "inference_failed" and first["text"] == ""
    assert "out of memory" in first["message"]
    assert second["triplets"][0]["head"] == FACT[0] and "error" not in second
    assert messages[-1] == {"type": "done"} and code == 1000


def test_disconnect_mid_utterance_still_reaches_the_graph(make_server, meeting_audio):
    server = make_server()
    cut = int(16000 * 2.0)  # inside the first utterance

    async def scenario():
        async with connect(server.url) as ws:
            await ws.send(start_text(room="cut"))
            for frame in pcm_frames(meeting_audio[:cut], 16000):
                await ws.send(frame)
        # the client is gone without `stop`

    asyncio.run(scenario())
    graph = wait_for(lambda: (g := json.loads(http_get(server.http + "/v1/rooms/cut/graph")[2]))
                     .get("edges") and g)
    assert [e["id"] for e in graph["edges"]] == [FACT_ID]
    assert wait_for(lambda: not server.server.sessions)


def test_slow_viewer_never_stalls_producers(make_server, meeting_audio):
    server = make_server(send_queue=8)

    async def scenario():
        async with connect(server.url, max_queue=1, max_size=None) as viewer:
            await viewer.send(wire(subscribe_message("busy")))
            ready = json.loads(await viewer.recv())
            assert ready["type"] == "ready"
            # The viewer stops reading. Flood its room with large deltas until its TCP
            # buffers are full, then stream: the producer must finish all the same.
            room = server.server.rooms.open("busy")
            from streamre.graph import Mention
            from streamre.triplets import Triplet

            def flood():  # 300 deltas of about 20 kB each
                for i in range(300):
                    room.record(Mention("flood", i),
                                [Triplet(f"e{i}", f"R{j}" + "x" * 2000, "y") for j in range(10)],
                                time.time(), time.time())
            server.loop.call_soon_threadsafe(flood)
            started = time.monotonic()
            messages, code = await stream(server.url, meeting_audio, room="busy")
            took = time.monotonic() - started
            # Now read: the viewer gets a snapshot and no version gap afterwards.
            seen, last = [], None
            async with asyncio.timeout(30):
                while last is None or last < room.graph.version:
                    m = json.loads(await viewer.recv())
                    if m["type"] == "graph":
                        seen.append(m)
                        last = m["version"]
            return messages, code, took, seen, room.graph.version

    messages, code, took, seen, final = asyncio.run(scenario())
    assert code == 1000 and len(of_type(messages, "triplets")) == 2 and took < 20
    snapshots = [i for i, m in enumerate(seen) if m["op"] == "snapshot"]
    assert len(snapshots) >= 2  # the first, and at least one resync
    after = seen[snapshots[-1]:]
    assert [m["version"] for m in after] == list(range(after[0]["version"], final + 1))
    assert server.server.metrics.viewer_resyncs._value.get() >= 1


def test_full_rooms_refuse_new_facts_and_say_so(make_server, meeting_audio):
    server = make_server(graph=GraphSettings(max_edges=1, dedup_window_s=0))
    room = server.server.rooms.open("full")
    from streamre.triplets import Triplet

    server.call(lambda: _apply(room, [Triplet("A", "Kill", "B")]))  # the one edge it may hold
    messages, _ = asyncio.run(stream(server.url, meeting_audio, room="full"))
    rooms = json.loads(http_get(server.http + "/v1/rooms")[2])
    assert rooms[0]["edges"] == 1 and rooms[0]["refused_facts"] == 2  # one per utterance
    assert b"streamre_graph_facts_refused_total 2.0" in http_get(server.http + "/metrics")[2]
    assert len(of_type(messages, "triplets")) == 2  # the session is answered all the same


async def _apply(room, triplets):
    from streamre.graph import Mention

    room.record(Mention("test", 0), triplets, time.time(), time.time())


def test_connect_disconnect_cycles_leak_nothing(make_server):
    server = make_server()

    def census():
        tasks = server.call(lambda: _count_tasks())
        gc.collect()
        sessions = sum(type(o) is Session for o in gc.get_objects())
        return tasks, sessions, len(server.server.sessions)

    def heap() -> int:
        gc.collect()
        return len(gc.get_objects())

    async def cycles(n):
        for i in range(n):
            async with connect(server.url) as ws:
                if i % 2:
                    await ws.send(start_text(room=f"r{i % 5}"))
                    await ws.send(np.full(1600, 3000, np.int16).tobytes())
                else:
                    await ws.send(wire(subscribe_message("r0")))
                await ws.recv()

    asyncio.run(cycles(20))  # warm up caches and lazily created objects
    wait_for(lambda: census()[2] == 0)
    before, objects = census(), heap()
    asyncio.run(cycles(200))
    wait_for(lambda: census() == before, timeout=30)
    # No memory growth: 200 cycles leave fewer live objects behind than one leaked per cycle.
    assert heap() - objects < 200
    assert all(not r.members for r in server.server.rooms)


async def _count_tasks() -> int:
    return len(asyncio.all_tasks())


def test_max_sessions_closes_with_1013(make_server):
    server = make_server(max_sessions=1)

    async def scenario():
        async with connect(server.url) as first:
            await first.send(wire({"type": "subscribe"}))
            await first.recv()
            async with connect(server.url) as second:
                await receive_all(second, timeout=10)
            await first.send(wire(ping_message()))
            while json.loads(await first.recv())["type"] != "pong":
                pass
            return second.close_code

    assert asyncio.run(scenario()) == 1013


def test_token_auth_on_http_and_websocket(make_server):
    server = make_server(token="s3cret")
    assert http_get(server.http + "/healthz")[0] == 401
    assert http_get(server.http + "/healthz", {"Authorization": "Bearer wrong"})[0] == 401
    assert http_get(server.http + "/healthz", {"Authorization": "Bearer s3cret"})[0] == 200
    assert http_get(server.http + "/v1/rooms?token=s3cret")[0] == 200
    for record in ("transcript", "export", "graph?version=0"):  # the record, likewise
        assert http_get(f"{server.http}/v1/rooms/r/{record}")[0] == 401
        assert http_get(f"{server.http}/v1/rooms/r/{record}",
                        {"Authorization": "Bearer s3cret"})[0] == 404  # no such room
    # Ambiguous credentials are refused whichever comes first.
    assert http_get(server.http + "/v1/rooms?token=s3cret&token=wrong")[0] == 401
    assert http_get(server.http + "/v1/rooms?token=wrong&token=s3cret")[0] == 401
    assert http_get(server.http + "/v1/rooms?token=s3cret",
                    {"Authorization": "Bearer wrong"})[0] == 401
    assert http_get(server.http + "/v1/rooms?token=s3cret",
                    {"Authorization": "Bearer s3cret"})[0] == 401

    async def handshake(url, headers=None):
        try:
            async with connect(url, additional_headers=headers) as ws:
                await ws.send(wire(ping_message()))
                return json.loads(await ws.recv())["type"]
        except InvalidStatus as e:
            return e.response.status_code

    assert asyncio.run(handshake(server.url)) == 401
    assert asyncio.run(handshake(server.url + "?token=nope")) == 401
    assert asyncio.run(handshake(server.url + "?token=s3cret")) == "pong"
    assert asyncio.run(handshake(server.url, {"Authorization": "Bearer s3cret"})) == "pong"


def test_origin_allow_list(make_server):
    server = make_server(allowed_origins=("https://meet.example",))

    async def handshake(origin):
        try:
            async with connect(server.url, origin=origin) as ws:
                await ws.send(wire(ping_message()))
                return json.loads(await ws.recv())["type"]
        except InvalidStatus as e:
            return e.response.status_code

    assert asyncio.run(handshake("https://meet.example")) == "pong"
    assert asyncio.run(handshake("https://evil.example")) == 403
    assert asyncio.run(handshake(None)) == "pong"  # non-browser clients send no Origin


def test_rooms_are_shared_by_producers_and_viewers(make_server, meeting_audio):
    server = make_server(graph=GraphSettings(dedup_window_s=0))  # every sighting its own mention

    async def scenario():
        async with connect(server.url) as viewer:
            await viewer.send(wire(subscribe_message("shared")))
            await stream(server.url, meeting_audio, room="shared", speaker="alice")
            await stream(server.url, meeting_audio, room="shared", speaker="bob")
            await stream(server.url, meeting_audio, room="elsewhere")
            seen = []
            async with asyncio.timeout(20):
                while not seen or seen[-1].get("version") != 4:
                    seen.append(json.loads(await viewer.recv()))
            # A resync by `subscribe` gives a fresh snapshot at the current version.
            await viewer.send(wire(subscribe_message("shared")))
            resync = json.loads(await viewer.recv())
            return seen, resync

    seen, resync = asyncio.run(scenario())
    graphs = of_type(seen, "graph")
    assert [g["version"] for g in graphs] == [0, 1, 2, 3, 4]
    assert all(g["room"] == "shared" for g in graphs)
    assert resync["op"] == "snapshot" and resync["version"] == 4
    (edge,) = resync["edges"]
    assert edge["mentions"] == 4 and sorted(edge["speakers"]) == ["alice", "bob"]


def test_graceful_shutdown_finishes_open_streams(make_server, meeting_audio):
    server = make_server()

    async def scenario():
        async with connect(server.url) as ws:
            await ws.send(start_text(room="late"))
            for frame in pcm_frames(meeting_audio[: int(16000 * 2.0)], 16000):
                await ws.send(frame)
            await ws.send(wire(ping_message()))
            while json.loads(await ws.recv())["type"] != "pong":
                pass  # every frame has reached the server
            shutdown = asyncio.create_task(asyncio.to_thread(server.stop))
            messages = await receive_all(ws)
            await shutdown
            return messages, ws.close_code

    messages, code = asyncio.run(scenario())
    assert code == 1000 and messages[-1] == {"type": "done"}
    (triplets,) = of_type(messages, "triplets")
    assert triplets["triplets"][0]["head"] == FACT[0]
