"""What a hostile client can take from a live server, bounded (issue 17's findings 1 and 2):
rooms flooded from one socket, sockets that never start, and the separate producer and viewer
caps. Every test here runs a real server and real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import re

from websockets.asyncio.client import connect

from helpers import (http_get, of_type, receive_all, start_server, start_text, stream, wait_for,
                     wire)
from streamre.protocol import ping_message, subscribe_message

FLOOD = 20000


def rss_mb(pid: int) -> float:
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def test_a_room_flood_from_one_socket_is_refused_and_costs_no_memory(fact_checkpoint, tmp_path):
    server, port = start_server("--model", str(fact_checkpoint), "--speech-facts", "speech",
                                "--data-dir", str(tmp_path))
    try:
        assert wait_for(lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 60)

        async def flood():
            async with connect(f"ws://127.0.0.1:{port}/v1/stream") as ws:
                async def send_all():
                    for n in range(FLOOD):
                        await ws.send(wire(subscribe_message(f"flood{n}")))
                sender = asyncio.create_task(send_all())
                kinds: dict[str, int] = {}
                async with asyncio.timeout(120):
                    while kinds.get("ready", 0) + kinds.get("too_many_rooms", 0) < FLOOD:
                        m = json.loads(await ws.recv())
                        key = m["code"] if m["type"] == "error" else m["type"]
                        kinds[key] = kinds.get(key, 0) + 1
                await sender
                return kinds

        before = rss_mb(server.pid)
        kinds = asyncio.run(flood())
        grown = rss_mb(server.pid) - before
        rooms = http_get(f"http://127.0.0.1:{port}/v1/rooms")[2]
    finally:
        server.terminate()
        server.wait(30)
    assert kinds["ready"] == 16 and kinds["too_many_rooms"] == FLOOD - 16
    assert grown < 20, f"the server grew {grown:.1f} MB"  # the unbounded server grew 54 MB
    assert len(json.loads(rooms)) <= 16 and len(rooms) < 4096


def test_rooms_in_memory_stay_under_the_cap_and_a_full_server_says_so(make_server):
    server = make_server(max_rooms=20)

    async def viewer(*rooms: str):
        ws = await connect(server.url)
        answers = []
        for room in rooms:
            await ws.send(wire(subscribe_message(room)))
            while (m := json.loads(await ws.recv()))["type"] == "graph":
                pass
            answers.append(m["code"] if m["type"] == "error" else m["type"])
        return ws, answers

    async def scenario():
        # A viewer is in one room at a time: the rooms it passed through idle behind it and
        # make way for the 19 held ones (20 in memory, each with a client).
        wanderer, wandered = await viewer(*(f"w{n}" for n in range(10)))
        held = [await viewer(f"h{n}") for n in range(19)]
        refused = (await viewer("new"))[1]
        joined = (await viewer("h0"))[1]  # a room in memory can always be joined
        before = len(server.server.sessions)
        await wanderer.close()
        wait_for(lambda: len(server.server.sessions) < before)  # the server saw it leave
        after = (await viewer("new"))[1]
        return wandered, [answers for _, answers in held], refused, joined, after

    wandered, held, refused, joined, after = asyncio.run(scenario())
    assert wandered == ["ready"] * 10 and held == [["ready"]] * 19
    assert refused == ["too_many_rooms"] and joined == ["ready"] and after == ["ready"]
    assert len(server.server.rooms) == 20
    assert len(json.loads(http_get(server.http + "/v1/rooms")[2])) == 20


async def _idle_sockets(url: str, n: int) -> list:
    sockets = []
    for _ in range(n):
        sockets.append(await connect(url))
    return sockets


def test_idle_sockets_never_lock_out_a_producer(make_server, meeting_audio):
    server = make_server(handshake_timeout_s=120)  # only the pending cap protects here

    async def scenario():
        idle = await _idle_sockets(server.url, 70)
        messages, code = await stream(server.url, meeting_audio, room="real")
        closed = [ws.close_code for ws in idle]
        await asyncio.gather(*(ws.close() for ws in idle))
        return messages, code, closed

    messages, code, closed = asyncio.run(scenario())
    assert code == 1000 and of_type(messages, "done") and len(of_type(messages, "triplets")) == 2
    assert closed.count(1013) >= 70 - 32  # the oldest that never started made way


def test_idle_sockets_make_way_at_max_sessions_too(make_server, meeting_audio):
    server = make_server(handshake_timeout_s=120, max_sessions=40, max_pending=1000)

    async def scenario():
        idle = await _idle_sockets(server.url, 70)
        messages, code = await stream(server.url, meeting_audio, room="real")
        await asyncio.gather(*(ws.close() for ws in idle))
        return messages, code

    messages, code = asyncio.run(scenario())
    assert code == 1000 and of_type(messages, "done")


def test_a_socket_that_never_starts_is_closed_after_the_handshake_window(make_server):
    server = make_server(handshake_timeout_s=0.5)

    async def scenario():
        async with connect(server.url) as nobody, connect(server.url) as viewer:
            await viewer.send(wire(subscribe_message("r")))
            await nobody.send(wire(ping_message()))  # a ping is not a handshake
            answers = await receive_all(nobody, timeout=10)
            await asyncio.sleep(0.5)
            await viewer.send(wire(ping_message()))
            seen = [json.loads(await viewer.recv())["type"] for _ in range(3)]
            return answers, nobody.close_code, seen

    answers, code, seen = asyncio.run(scenario())
    assert [m.get("code", m["type"]) for m in answers] == ["pong", "handshake_timeout"]
    assert code == 4400
    assert seen == ["ready", "graph", "pong"]  # the viewer started in time and stays


def test_producers_and_viewers_have_caps_of_their_own(make_server):
    server = make_server(max_producers=1, max_viewers=1)

    async def refused(first_message: str):
        async with connect(server.url) as ws:
            await ws.send(first_message)
            return [m.get("code") for m in await receive_all(ws, 10)], ws.close_code

    async def scenario():
        async with connect(server.url) as producer, connect(server.url) as viewer:
            await producer.send(start_text(room="r"))
            await viewer.send(wire(subscribe_message("r")))
            assert json.loads(await producer.recv())["type"] == "ready"
            assert json.loads(await viewer.recv())["type"] == "ready"
            return (await refused(start_text(room="r")),
                    await refused(wire(subscribe_message("r"))))

    second_producer, second_viewer = asyncio.run(scenario())
    assert second_producer == (["server_full"], 1013)
    assert second_viewer == (["server_full"], 1013)
    assert wait_for(lambda: not server.server.sessions)
