"""MQTT with a real Mosquitto broker started here: the publisher loses nothing across broker
restarts and absences, and `streamre subscribe` ends with the server's graph."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import aiomqtt
import pytest

from streamre.mqtt.mirror import GraphMirror
from streamre.mqtt.outbox import MqttOutbox
from helpers import Broker, Subscriber, http_get, stream, wait_for
from streamre.graph import GraphSettings

@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


def server_graph(server, room: str) -> dict:
    graph = json.loads(http_get(f"{server.http}/v1/rooms/{room}/graph")[2])
    return {**graph, "nodes": sorted(graph["nodes"], key=lambda n: n["id"]),
            "edges": sorted(graph["edges"], key=lambda e: e["id"])}


def converged(subscriber: Subscriber, server, room: str) -> dict:
    """Wait until the subscriber's copy equals the server's graph, and return it."""
    expected = server_graph(server, room)
    wait_for(lambda: subscriber.graph(room) == expected, timeout=30)
    return expected


def test_broker_restart_mid_meeting_loses_nothing(make_server, broker, meeting_audio, tmp_path):
    server = make_server(mqtt=broker.url, graph=GraphSettings(dedup_window_s=0),
                         mqtt_snapshot_interval_s=0.5)
    subscriber = Subscriber(broker.url, "standup", tmp_path / "sub.db")
    try:
        subscriber.wait_subscribed()  # transcript lines are not retained: it must be there
        asyncio.run(stream(server.url, meeting_audio, room="standup"))
        broker.stop()
        asyncio.run(stream(server.url, meeting_audio, room="standup"))  # while it is down
        broker.start()
        asyncio.run(stream(server.url, meeting_audio, room="standup"))
        graph = converged(subscriber, server, "standup")
        assert graph["version"] == 6 and graph["edges"][0]["mentions"] == 6
        # Every transcript line too, the ones said while the broker was down included.
        said = json.loads(http_get(f"{server.http}/v1/rooms/standup/transcript")[2])
        expected = sorted(((s["session_id"], s["segment_id"], s["text"])
                           for s in said["segments"]), key=lambda x: x[:2])
        assert len(expected) == 6
        wait_for(lambda: sorted(subscriber.lines("standup")) == expected, timeout=30)
    finally:
        subscriber.stop()
    exported = subprocess.run([sys.executable, "-m", "streamre", "graph", "export", "--db",
                               str(tmp_path / "sub.db"), "--room", "standup"],
                              capture_output=True, text=True, timeout=60)
    assert json.loads(exported.stdout) == graph
    subtitles = subprocess.run([sys.executable, "-m", "streamre", "graph", "export", "--db",
                                str(tmp_path / "sub.db"), "--room", "standup", "--format",
                                "srt"], capture_output=True, text=True, timeout=60)
    assert subtitles.stdout.count(" --> ") == 6 and subtitles.stdout.startswith("1\n")


def test_subscriber_restart_mid_meeting(make_server, broker, meeting_audio, tmp_path):
    server = make_server(mqtt=broker.url, graph=GraphSettings(dedup_window_s=0),
                         mqtt_snapshot_interval_s=0.5)
    subscriber = Subscriber(broker.url, "+", tmp_path / "sub.db")
    asyncio.run(stream(server.url, meeting_audio, room="a"))
    converged(subscriber, server, "a")
    subscriber.stop()
    asyncio.run(stream(server.url, meeting_audio, room="a"))  # while it is away
    asyncio.run(stream(server.url, meeting_audio, room="b"))
    subscriber = Subscriber(broker.url, "+", tmp_path / "sub.db")
    try:
        assert converged(subscriber, server, "a")["version"] == 4
        assert converged(subscriber, server, "b")["version"] == 2
    finally:
        subscriber.stop()


def test_absent_broker_never_stalls_and_the_outbox_drains_in_order(make_server, meeting_audio,
                                                                  tmp_path):
    # The observer holds a persistent session, so the broker queues what the server publishes
    # while the observer is away: no race between the server's reconnect and the observer's.
    observer = {"identifier": "observer", "clean_session": False}

    async def register_observer():
        async with aiomqtt.Client("127.0.0.1", broker.port, **observer) as client:
            await client.subscribe("streamre/v1/late/#", qos=1)
            await client.subscribe("streamre/v1/status/#", qos=1)

    broker = Broker(tmp_path).start()
    asyncio.run(register_observer())
    broker.stop()  # the session survives in the broker's persistence file
    server = make_server(mqtt=broker.url, graph=GraphSettings(dedup_window_s=0),
                         mqtt_snapshot_interval_s=0.5)
    started = time.monotonic()
    messages, code = asyncio.run(stream(server.url, meeting_audio, room="late"))
    assert code == 1000 and time.monotonic() - started < 20  # answered without a broker
    # 2 deltas, 2 transcript lines and 2 triplets answers, on disk
    assert len(server.server.publisher.outbox) == 6
    broker.start()
    try:
        async def receive_in_order():
            async with aiomqtt.Client("127.0.0.1", broker.port, **observer) as client:
                got = []
                async with asyncio.timeout(30):
                    async for m in client.messages:
                        got.append((str(m.topic), json.loads(m.payload)))
                        if str(m.topic).endswith("snapshot"):
                            return got
        got = asyncio.run(receive_in_order())
    finally:
        broker.stop()
    kinds = [(t.split("/")[-1], p.get("segment_id", p.get("version", p.get("state"))))
             for t, p in got]
    assert ("online" in [k[1] for k in kinds])
    ordered = [k for k in kinds if k[0] in ("triplets", "delta", "transcript")]
    # In the order they happened: a room learns a fact before the producer is told.
    assert ordered == [("delta", 1), ("transcript", 0), ("triplets", 0),
                       ("delta", 2), ("transcript", 1), ("triplets", 1)]
    lines = [p for t, p in got if t.endswith("/transcript")]
    answers = [p for t, p in got if t.endswith("/triplets")]
    assert [(x["segment_id"], x["text"]) for x in lines] == \
        [(x["segment_id"], x["text"]) for x in answers]
    assert all(x["edges"] and x["room"] == "late" for x in lines)
    triplets = [p for t, p in got if t.endswith("/triplets")]
    assert triplets[0]["message_id"] == f"{triplets[0]['session_id']}/0"
    assert len(server.server.publisher.outbox) == 0


def test_duplicate_and_out_of_order_deliveries(broker, tmp_path):
    def delta(v, mentions):
        return {"type": "graph", "op": "delta", "room": "r", "version": v,
                "nodes": [{"id": "a", "label": "A", "mentions": mentions}],
                "edges": [{"id": "e", "source": "a", "target": "a", "mentions": mentions}]}

    snapshot0 = {"type": "graph", "op": "snapshot", "room": "r", "version": 0, "nodes": [],
                 "edges": []}
    snapshot4 = {**delta(4, 4), "op": "snapshot"}
    sequence = [snapshot0, delta(1, 1), delta(1, 1), delta(3, 3), delta(2, 2), delta(2, 2),
                delta(4, 4), snapshot0, snapshot4, delta(3, 3)]

    # The pure core: the same end whatever came twice or out of order.
    mirror = GraphMirror()
    for m in sequence:
        mirror.apply(m)
    expected = mirror.rooms["r"].to_json()
    assert expected["version"] == 4 and expected["edges"][0]["mentions"] == 4
    assert mirror.duplicates == 3 and mirror.gaps == 1  # d1 twice, stale snapshot, late d3

    # Through the broker, to a real subscriber process.
    subscriber = Subscriber(broker.url, "r", tmp_path / "sub.db")
    try:
        subscriber.wait_subscribed()  # deliveries before that are not for it

        async def publish():
            async with aiomqtt.Client("127.0.0.1", broker.port) as client:
                for m in sequence:
                    kind = "snapshot" if m["op"] == "snapshot" else "delta"
                    await client.publish(f"streamre/v1/r/graph/{kind}", json.dumps(m), qos=1)
                await client.publish("streamre/v1/r/graph/delta", b"not json", qos=1)
        asyncio.run(publish())
        wait_for(lambda: subscriber.graph("r") == expected)
    finally:
        subscriber.stop()


def test_outbox_is_bounded_and_persistent(tmp_path):
    outbox = MqttOutbox(tmp_path / "o.db", max_messages=3)
    assert all(outbox.put(f"t/{i}", b"x") for i in range(3))
    assert not outbox.put("t/3", b"x") and outbox.refused == 1
    seq, first, _, _ = outbox.peek(1)[0]
    outbox.remove(seq)
    outbox.close()
    again = MqttOutbox(tmp_path / "o.db", max_messages=3)  # a restart keeps the rest, in order
    assert [t for _, t, _, _ in again.peek()] == ["t/1", "t/2"] and first == "t/0"


def test_status_is_online_then_offline(make_server, broker):
    server = make_server(mqtt=broker.url, server_id="srv1")
    wait_for(lambda: server.server.publisher.connected.is_set())

    async def status():
        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.subscribe("streamre/v1/status/srv1", qos=1)
            async with asyncio.timeout(10):
                async for m in client.messages:
                    return json.loads(m.payload)["state"]

    assert asyncio.run(status()) == "online"
    server.stop()
    assert asyncio.run(status()) == "offline"
