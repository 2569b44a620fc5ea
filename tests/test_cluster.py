"""Many servers, one meeting (`serve --cluster`), with real parts: one Mosquitto and three
`streamre serve` processes on loopback, real WebSocket viewers, `streamre stream` failing
over, `kill -9` and a broker outage. The instances hear with the tests' fact checkpoint and
read typed notes with the tests' text model, so a room gets different facts from speech and
from text, said by different speakers on different instances."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from helpers import (STREAMRE, TEXT_SENTENCES, Broker, Subscriber, free_port, http_get,
                     send_json, stream, viewer_page, wait_for, wire)
from streamre.graph import GraphSettings, RoomGraph
from streamre.graph.store import DB_NAME, GraphStore
from streamre.protocol import subscribe_message

pytestmark = pytest.mark.slow
CLUSTER = "c1"


class Instance:
    """`streamre serve --cluster` in a process of its own, on a fixed port (so a restart is
    found where it was), its log read as it comes."""

    def __init__(self, name: str, folder: Path, broker: Broker, fact: Path, text: Path) -> None:
        self.name, self.port, self.log = name, free_port(), []
        self.args = [*STREAMRE, "serve", "--port", str(self.port), "--model", str(fact),
                     "--speech-facts", "speech", "--text-model", str(text), "--mqtt", broker.url,
                     "--cluster", CLUSTER, "--server-id", name, "--data-dir", str(folder / name),
                     "--graph-dedup-window-s", "0", "--mqtt-snapshot-interval-s", "0.5"]
        self.db = folder / name / DB_NAME
        self.process: subprocess.Popen | None = None

    def start(self) -> "Instance":
        self.log = []
        self.process = subprocess.Popen(self.args, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read_log, args=(self.process,), daemon=True).start()
        wait_for(lambda: self.healthy() and any("joined as" in line for line in self.log),
                 timeout=90)
        return self

    def _read_log(self, process: subprocess.Popen) -> None:  # also keeps the pipe drained
        for line in process.stderr:
            self.log.append(line)

    def healthy(self) -> bool:
        try:
            return http_get(f"{self.http}/healthz")[0] == 200
        except OSError:
            return False

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    def graph(self, room: str) -> dict | None:
        status, _, body = http_get(f"{self.http}/v1/rooms/{room}/graph")
        return json.loads(body) if status == 200 else None

    def said(self, room: str) -> set[tuple[str, int, str]]:
        status, _, body = http_get(f"{self.http}/v1/rooms/{room}/transcript")
        segments = json.loads(body)["segments"] if status == 200 else []
        return {(s["session_id"], s["segment_id"], s["text"]) for s in segments}

    def metric(self, name: str) -> float:
        """One sample of its `/metrics`, by its full name with labels."""
        for line in http_get(f"{self.http}/metrics")[2].decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    def note(self, room: str, text: str, speaker: str) -> None:
        status, answer = send_json(f"{self.http}/v1/rooms/{room}/notes",
                                   json.dumps({"text": text, "speaker": speaker}).encode())
        assert status == 200, answer

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)


def content(graph: dict | None) -> tuple:
    """What must converge: every node and edge with its ids, mentions, confidence and
    evidence (the version is each instance's own)."""
    if graph is None:
        return ()
    edges = sorted((e["id"], e["source"], e["target"], e["relation"], e["mentions"],
                    e["confidence"], json.dumps(e["evidence"]), e["segment_count"],
                    tuple(e["speakers"])) for e in graph["edges"])
    nodes = sorted((n["id"], n["label"], n["mentions"]) for n in graph["nodes"])
    return edges, nodes


def converged(instances: list[Instance], room: str, timeout: float = 60) -> tuple:
    """Wait until every instance serves the same non-empty graph of `room`; return it."""
    def same():
        graphs = [content(i.graph(room)) for i in instances]
        return graphs[0] if graphs[0] and all(g == graphs[0] for g in graphs) else None
    return wait_for(same, timeout)


def replayed(db: Path, room: str) -> tuple:
    """The graph one instance would build from these segments, told them in the total
    order: the journal's ops replayed into a plain `RoomGraph`."""
    store = GraphStore(db)
    try:
        graph = RoomGraph(room, GraphSettings(dedup_window_s=0))
        for op in store.ops(room):
            if op.change is not None:
                graph.change(op.change)
            else:
                graph.apply(op.triplets, op.mention(), op.at)
        return content(graph.to_json())
    finally:
        store.close()


class Viewer:
    """A browser-like viewer on its own thread: the room's graph from its snapshot and
    deltas, and its transcript lines, as they arrive."""

    def __init__(self, instance: Instance, room: str) -> None:
        self.nodes, self.edges, self.said = {}, {}, {}
        self.last_line = 0.0  # when the latest transcript line came (monotonic)
        self.version, self.ready = -1, threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(instance, room),),
                                        daemon=True)
        self._thread.start()
        assert self.ready.wait(30), "the viewer never got its first snapshot"

    async def _run(self, instance: Instance, room: str) -> None:
        try:
            async with connect(instance.url, max_size=None) as ws:
                await ws.send(wire(subscribe_message(room, history=True)))
                async for raw in ws:
                    self._take(json.loads(raw))
        except (ConnectionClosed, OSError):
            pass

    def _take(self, message: dict) -> None:
        if message["type"] == "transcript":  # a corrected line replaces what it was
            self.said[message["session_id"], message["segment_id"]] = message["text"]
            self.last_line = time.monotonic()
        elif message["type"] == "graph":
            if message["op"] == "snapshot":
                self.nodes, self.edges = {}, {}
                self.ready.set()
            for edge in message.get("removed_edges", []):
                del self.edges[edge]
            for node in message.get("removed_nodes", []):
                del self.nodes[node]
            self.nodes.update({n["id"]: n for n in message["nodes"]})
            self.edges.update({e["id"]: e for e in message["edges"]})
            self.version = message["version"]

    @property
    def lines(self) -> set[tuple[str, int, str]]:
        return {(session, segment, text) for (session, segment), text in self.said.items()}

    def graph(self) -> dict:
        return {"nodes": list(self.nodes.values()), "edges": list(self.edges.values())}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, fact_checkpoint, text_checkpoint):
    folder = tmp_path_factory.mktemp("cluster")
    broker = Broker(folder).start()
    instances = [Instance(name, folder, broker, fact_checkpoint, text_checkpoint)
                 for name in ("a", "b", "c")]
    for instance in instances:
        instance.start()
    yield broker, instances
    for instance in instances:
        instance.stop()
    broker.stop()


def test_a_meeting_said_on_a_is_seen_whole_on_b_and_c(cluster, meeting_audio):
    _, (a, b, c) = cluster
    viewer = Viewer(b, "one")
    asyncio.run(stream(a.url, meeting_audio, room="one", speaker="ana"))
    a.note("one", list(TEXT_SENTENCES)[1], "bo")
    graph = converged([a, b, c], "one")  # c has no client of the room at all
    assert len(graph[0]) == 2  # the spoken fact and the typed one
    wait_for(lambda: content(viewer.graph()) == graph)  # b's viewer, edge for edge
    said = a.said("one")
    assert len(said) == 3 and wait_for(lambda: b.said("one") == said == c.said("one"))
    assert viewer.lines == said


def test_a_correction_and_a_merge_made_anywhere_converge_everywhere(cluster, meeting_audio):
    _, (a, b, c) = cluster
    viewer = Viewer(c, "fix")
    asyncio.run(stream(a.url, meeting_audio, room="fix", speaker="ana"))
    converged([a, b, c], "fix")
    (first, second) = sorted(a.said("fix"))
    typed, fact = list(TEXT_SENTENCES)[1], ("Maria Lopez", "Live_In", "Boston")
    status, answer = send_json(f"{b.http}/v1/rooms/fix/transcript/{first[0]}/{first[1]}",
                               json.dumps({"text": typed, "by": "bo"}).encode(), method="PUT")
    assert status == 200 and answer["segment"]["heard"] == first[2], answer
    wait_for(lambda: any(n["label"] == "Maria Lopez" for n in c.graph("fix")["nodes"]))
    status, _ = send_json(f"{c.http}/v1/rooms/fix/entities/merge",
                          json.dumps({"from": "Maria Lopez", "into": "Maria Lopes"}).encode())
    assert status == 200
    expected = {("Maria Lopes", fact[1], fact[2]), ("David Chen", "Work_For", "World Bank")}

    def agreed() -> tuple | None:
        """The graph all three serve, once it states the expected facts."""
        graphs = [content(i.graph("fix")) for i in (a, b, c)]
        if not graphs[0] or any(g != graphs[0] for g in graphs):
            return None
        labels = {n[0]: n[1] for n in graphs[0][1]}
        stated = {(labels[e[1]], e[3], labels[e[2]]) for e in graphs[0][0]}
        return graphs[0] if stated == expected else None
    graph = wait_for(agreed, timeout=60)
    assert graph == replayed(a.db, "fix") == replayed(b.db, "fix")
    said = {(first[0], first[1], typed), second}
    assert wait_for(lambda: a.said("fix") == b.said("fix") == c.said("fix") == said)
    wait_for(lambda: content(viewer.graph()) == graph and viewer.lines == said)
    learnt = json.loads(http_get(f"{a.http}/v1/rooms/fix/learnt")[2])["learnt"]
    assert {"heard": "Maria Lopez", "meant": "Maria Lopes"} in learnt


def test_speaking_into_a_and_b_at_once_converges_on_the_ordered_replay(cluster,
                                                                       meeting_audio):
    _, (a, b, c) = cluster

    async def both():
        await asyncio.gather(stream(a.url, meeting_audio, room="two", speaker="ana"),
                             stream(b.url, meeting_audio, room="two", speaker="ben"),
                             asyncio.to_thread(a.note, "two", list(TEXT_SENTENCES)[1], "cy"),
                             asyncio.to_thread(b.note, "two", list(TEXT_SENTENCES)[0], "di"))
    asyncio.run(both())
    graph = converged([a, b, c], "two")
    assert wait_for(lambda: len(a.said("two")) == 6 and
                    a.said("two") == b.said("two") == c.said("two"))
    assert graph == replayed(a.db, "two") == replayed(c.db, "two")
    spoken = [e for e in graph[0] if e[3] == "Work_For"][0]
    assert spoken[4] == 5 and set(spoken[8]) == {"ana", "ben", "di"}  # 4 said + 1 typed
    assert a.metric('streamre_cluster_ops_total{outcome="local"}') >= 3
    assert c.metric('streamre_cluster_ops_total{outcome="merged"}') >= 6
    assert (a.metric("streamre_cluster_lead"), b.metric("streamre_cluster_lead")) == (1, 0)
    assert c.metric("streamre_cluster_members") == 2


def test_kill_9_mid_meeting_fails_over_and_loses_nothing(cluster, meeting_audio, tmp_path):
    broker, (a, b, c) = cluster
    integrator = Subscriber(broker.url, "three", tmp_path / "mirror.db")  # `streamre subscribe`
    integrator.wait_subscribed()
    wav = tmp_path / "long.wav"
    soundfile.write(wav, np.tile(meeting_audio, 3), 16000, subtype="PCM_16")  # ~24 s
    seen_on_a, seen_on_b = Viewer(a, "three"), Viewer(b, "three")
    producer = subprocess.Popen([*STREAMRE, "stream", str(wav), "--url", a.url, "--url", b.url,
                                 "--room", "three", "--speaker", "ana", "--realtime"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with viewer_page(a, "three", servers=[a.url, b.url]) as page:  # a page a served
        # Killed between lines, a second after the latest: what a announced in its last
        # milliseconds may still sit in its outbox, to reach b and c when it restarts
        # (docs/cluster.md); everything before is on them at once.
        wait_for(lambda: len(seen_on_a.lines) >= 2 and
                 time.monotonic() - seen_on_a.last_line > 1.0, timeout=60)
        a.kill()
        announced = (set(seen_on_a.lines), content(seen_on_a.graph()))
        out, err = producer.communicate(timeout=120)
        assert producer.returncode == 0, err  # it went on with b, to `done`
        assert "going on at" in err
        # The page went on with b too: every line and edge of the room, as b has them.
        on_page = page.locator("#transcript li")
        try:
            wait_for(lambda: on_page.count() == len(b.said("three")))
        except AssertionError:
            raise AssertionError(f"the page has {on_page.count()} lines, b "
                                 f"{len(b.said('three'))}: {b.said('three')}") from None
        wait_for(lambda: int(page.get_attribute("#stats", "data-edges")) ==
                 len(content(b.graph("three"))[0]))
    for instance in (b, c):  # nothing a announced is lost
        assert wait_for(lambda i=instance: announced[0] <= i.said("three"))
        edges = {e[0] for e in content(instance.graph("three"))[0]}
        assert {e[0] for e in announced[1][0]} <= edges
    wait_for(lambda: seen_on_b.lines >= announced[0])
    a.start()  # it catches up what was said while it was away, and converges
    graph = converged([a, b, c], "three")
    assert a.said("three") == b.said("three") == c.said("three")
    assert len(a.said("three")) >= 6 and graph == replayed(b.db, "three")
    spoken = graph[0][0]
    assert spoken[4] == len(a.said("three"))  # every segment one mention (no dedup window)
    # Integrators saw one graph through two changes of lead (a, then b, then a again).
    try:
        wait_for(lambda: content(integrator.graph("three")) == graph, timeout=30)
    finally:
        integrator.stop()


def test_a_broker_outage_keeps_each_instance_serving_then_converges(cluster, meeting_audio):
    broker, (a, b, c) = cluster
    viewer = Viewer(a, "four")
    broker.stop()
    try:
        asyncio.run(stream(b.url, meeting_audio, room="four", speaker="ben"))
        asyncio.run(stream(a.url, meeting_audio, room="four", speaker="ana"))
        # Each instance served its own viewers alone meanwhile.
        wait_for(lambda: len(viewer.lines) == 2 and viewer.edges)
        assert len(b.said("four")) == 2 and c.graph("four") is None
    finally:
        broker.start()
    graph = converged([a, b, c], "four", timeout=90)
    assert wait_for(lambda: len(a.said("four")) == 4 and
                    a.said("four") == b.said("four") == c.said("four"), timeout=30)
    assert graph[0][0][4] == 4 and graph == replayed(c.db, "four")
    # b's lines came to a after a's own, later ones: a's subtitles still run in meeting time.
    srt = http_get(f"{a.http}/v1/rooms/four/transcript?format=srt")[2].decode()
    starts = re.findall(r"^(\d\d:\d\d:\d\d,\d\d\d) -->", srt, re.MULTILINE)
    assert len(starts) == 4 and starts == sorted(starts)
    wait_for(lambda: content(viewer.graph()) == graph)
