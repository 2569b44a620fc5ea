"""The cluster's cores: ops as JSON, the order-free merge, heads and who repairs; and one
instance's side of it (its rooms, journal, outbox and link) fed messages directly."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamre.cluster.heads import Heads, repairer, repairs
from streamre.cluster.link import SILENT_S, ClusterLink, ops_topic
from streamre.cluster.node import ClusterNode
from streamre.graph import GraphSettings, Mention, RoomGraph
from streamre.graph.ops import BadOp, Op
from streamre.graph.ordered import OrderedGraph
from streamre.graph.store import GraphStore
from streamre.mqtt.outbox import MqttOutbox
from streamre.mqtt.publisher import MqttPublisher
from streamre.server.rooms import Rooms
from streamre.triplets import Triplet

NAMES = ["David Chen", "David Chenn", "Maria Lopez", "World Bank", "the World Bank", "Boston",
         "Priya Natarajan", "Infosys", "Pune"]
RELATIONS = ["Work_For", "Live_In", "OrgBased_In"]
SETTINGS = GraphSettings(dedup_window_s=5.0)


def make_op(origin: str, seq: int, key: float, facts: list[tuple[str, str, str, float]],
            room: str = "r") -> Op:
    return Op(room, origin, seq, key, f"s-{origin}", seq, origin.upper(), "speech", False,
              seq * 2.0, seq * 2.0 + 1.5, key - 2, key, f"said {seq} by {origin}",
              tuple(Triplet(*f) for f in facts))


fact = st.tuples(st.sampled_from(NAMES), st.sampled_from(RELATIONS), st.sampled_from(NAMES),
                 st.floats(0.1, 1.0))


@st.composite
def meetings(draw):
    """Ops of three origins, each numbered 1.. in its own time order, keys interleaved."""
    ops = []
    for origin in ("a", "b", "c"):
        key = 1000.0
        for seq in range(1, draw(st.integers(0, 12)) + 1):
            key += draw(st.floats(0.1, 8.0))
            ops.append(make_op(origin, seq, round(key, 3), draw(st.lists(fact, max_size=3))))
    return ops


def shown(graph: RoomGraph) -> tuple:
    """What converges: edge ids, relations, mentions, confidences, evidence; and nodes."""
    data = graph.to_json()
    return (sorted((e["id"], e["relation"], e["mentions"], e["confidence"],
                    json.dumps(e["evidence"]), e["segment_count"]) for e in data["edges"]),
            sorted((n["id"], n["label"], n["mentions"]) for n in data["nodes"]))


@settings(max_examples=60, deadline=None)
@given(meetings(), st.randoms(use_true_random=False), st.integers(1, 5))
def test_duplicated_and_reordered_ops_give_the_graph_of_the_total_order(ops, rng, every):
    in_order = RoomGraph("r", SETTINGS)
    for op in sorted(ops, key=lambda o: o.order):
        if op.triplets:
            in_order.apply(op.triplets, op.mention(), op.at)
    arrivals = ops + rng.sample(ops, len(ops) // 2)  # QoS 1 redeliveries, repairs
    rng.shuffle(arrivals)
    journal: list = []  # what a server has journaled: each op merged, after its merge
    merged = OrderedGraph("r", SETTINGS, checkpoint_every=every, checkpoints_kept=2,
                          journal=lambda: sorted(journal, key=lambda o: o.order))
    taken = []
    for op in arrivals:
        taken.append(merged.merge(op))
        journal += [op] if taken[-1] is not None else []
    assert sum(t is not None for t in taken) == len(ops)  # each op once, duplicates nothing
    assert shown(merged.graph) == shown(in_order) and len(merged) == len(ops)


def test_an_op_that_sorts_last_is_a_delta_and_an_early_one_a_snapshot():
    merged = OrderedGraph("r", SETTINGS, checkpoint_every=2)
    first = merged.merge(make_op("a", 1, 10.0, [("David Chen", "Work_For", "World Bank", .9)]))
    assert first.delta is not None and not first.rebuilt and merged.graph.version == 1
    assert merged.merge(make_op("a", 1, 10.0, [])) is None  # the same op again
    late = merged.merge(make_op("b", 1, 5.0, [("Maria Lopez", "Live_In", "Boston", .8)]))
    assert late.rebuilt and late.delta is None and merged.graph.version == 2
    assert len(late.stated) == 1 and late.stated[0] in {e["id"] for e in merged.graph.edges_json()}
    assert merged.rewinds == 1


def test_a_long_room_keeps_only_recent_ops_and_replays_an_older_one_from_the_journal():
    journal = [make_op("a", seq, 100.0 + seq, [("David Chen", "Work_For", "World Bank", .5)])
               for seq in range(1, 41)]
    merged = OrderedGraph("r", SETTINGS, checkpoint_every=4, checkpoints_kept=2,
                          journal=lambda: list(journal))
    merged.extend(journal)
    assert len(merged._ops) <= 8 and len(merged) == 40  # compacted in memory
    old = make_op("b", 1, 101.5, [("Maria Lopez", "Live_In", "Boston", .9)])
    late = merged.merge(old)
    assert late.rebuilt and merged.replays == 1 and len(merged) == 41
    assert merged.merge(journal[0]) is None  # an old duplicate, found in the journal
    in_order = RoomGraph("r", SETTINGS)
    for op in sorted([*journal, old], key=lambda o: o.order):
        in_order.apply(op.triplets, op.mention(), op.at)
    assert shown(merged.graph) == shown(in_order)


def test_ops_travel_as_json_and_bad_ones_are_refused():
    op = make_op("a.x1", 3, 12.5, [("David Chen", "Work_For", "World Bank", .75)])
    assert Op.from_json(json.loads(json.dumps(op.to_json()))) == op
    assert ops_topic("c1", "standup") == "streamre/v1/cluster/c1/standup/ops"
    for bad in [None, [], {**op.to_json(), "v": 2}, {**op.to_json(), "seq": 0},
                {**op.to_json(), "room": "a/b"}, {**op.to_json(), "key": float("nan")},
                {**op.to_json(), "triplets": [["a", "b"]]}, {**op.to_json(), "source": "x"},
                {k: v for k, v in op.to_json().items() if k != "at"}]:
        with pytest.raises(BadOp):
            Op.from_json(bad)


def test_heads_count_only_what_has_no_gap_below():
    heads = Heads()
    for seq in (1, 2, 4, 5):
        heads.add("r", "a", seq, now=100.0)
    assert heads.head("r", "a") == 2 and heads.next_seq("r", "a") == 6
    heads.add("r", "a", 3, now=100.0)
    assert heads.head("r", "a") == 5
    heads.add("old", "b", 1, now=10.0)
    assert heads.active(now=100.0, idle_s=60) == {"r": {"a": 5}}


def test_one_instance_repairs_each_gap():
    online = {"a": {"r": {"a": 5, "b": 2}}, "b": {"r": {"a": 5, "b": 3}},
              "c": {"r": {"a": 1, "b": 3}}}
    assert repairer("r", "a", online) == "a"  # the origin itself, while online
    del online["a"]  # a died: b and c both hold 3 of b's... and b is b's origin
    assert repairer("r", "a", online) == "b"  # the most of a's ops
    assert repairs("b", online["b"], online["c"], online) == [("r", "a", 1, 5)]
    assert repairs("c", online["c"], online["b"], online) == []
    assert repairer("r", "z", online) is None


# -- one instance's side, with its real journal and outbox, no broker -------------------------

def instance(tmp_path, origin: str = "a.x1"):
    """A lone instance's rooms in cluster mode: its journal, its MQTT outbox (never sent)."""
    store = GraphStore(tmp_path / "journal.db")
    publisher = MqttPublisher("mqtt://127.0.0.1:1", "a", MqttOutbox(tmp_path / "outbox.db"),
                              snapshot=lambda room: {})
    node = ClusterNode("c1", origin, idle_s=3600)
    rooms = Rooms(store, SETTINGS, publisher, node=node)
    node.send = lambda op: publisher.publish_op(ops_topic("c1", op.room), op.to_json())
    return store, publisher, node, rooms


def published(publisher: MqttPublisher, kind: str) -> list[dict]:
    return [json.loads(payload) for _, name, payload, _ in publisher.outbox.peek(1000)
            if name.endswith(kind)]


def test_a_new_lead_publishes_past_the_version_the_last_lead_published(tmp_path):
    store, publisher, node, rooms = instance(tmp_path)
    node.online["b.y2"] = {}  # b is there too; a sorts first, so a is the lead
    node.published["r"] = 50  # what b published while it was the lead
    room = rooms.open("r")
    room.record(Mention("s1", 0, "ana", text="one"),
                [Triplet("David Chen", "Work_For", "World Bank", .9)], at=10.0, began=9.0)
    assert room.graph.version == 51 and published(publisher, "graph/delta") == []
    assert "r" in publisher._dirty  # its snapshot, at 51, goes out instead
    room.record(Mention("s1", 1, "ana", text="two"),
                [Triplet("Maria Lopez", "Live_In", "Boston", .9)], at=12.0, began=11.0)
    assert [d["version"] for d in published(publisher, "graph/delta")] == [52]
    ops = published(publisher, "/ops")  # both segments went to the other instances
    assert [(o["origin"], o["seq"]) for o in ops] == [("a.x1", 1), ("a.x1", 2)]
    node.online["0.first"] = {}  # someone who sorts first: a stops publishing graphs
    room.record(Mention("s1", 2, "ana", text="three"),
                [Triplet("Priya Natarajan", "Work_For", "Infosys", .9)], at=14.0, began=13.0)
    assert len(published(publisher, "graph/delta")) == 1
    store.close()


def test_the_link_merges_ops_counts_bad_ones_and_follows_members(tmp_path):
    store, publisher, node, rooms = instance(tmp_path, origin="b.y2")
    leads = []
    link = ClusterLink("mqtt://127.0.0.1:1", node, store, rooms.merge, lambda: leads.append(1))
    op = make_op("a.x1", 1, 100.0, [("David Chen", "Work_For", "World Bank", .9)])
    payload = json.dumps(op.to_json()).encode()
    assert link.take(ops_topic("c1", "r"), payload) is None
    assert link.take(ops_topic("c1", "r"), payload) is None  # a QoS 1 redelivery: nothing
    assert rooms.graph("r").edge_count == 1 and len(store.ops("r")) == 1
    link.take("streamre/v1/cluster/c1/members/x.bad", b'{"state":"online","heads":{"r":7}}')
    assert "x.bad" not in node.online  # heads that are not {room: {origin: seq}}: ignored
    link.take(ops_topic("c1", "r"), b'{"v": 1, "room": "r"}')
    link.take(ops_topic("c1", "r"), b"not json")
    assert node.bad_ops == 2
    # a.x1 says it is online with nothing: b holds a's op 1, but a resends its own ops.
    online = json.dumps({"state": "online", "heads": {}}).encode()
    assert link.take("streamre/v1/cluster/c1/members/a.x1", online) is None
    assert not node.lead and leads == []
    # c lacks a's op while a is away: b, holding the most of it, is the one to resend it.
    link.take("streamre/v1/cluster/c1/members/a.x1", b'{"state":"offline"}')
    assert node.lead and leads == [1]
    assert link.take("streamre/v1/cluster/c1/members/c.z3", online) == "c.z3"
    assert link._repairs("c.z3") == [("r", "a.x1", 0, 1)]
    link.take("streamre/v1/cluster/c1/members/0.first", online)
    assert not node.lead  # 0.first sorts first; then it falls silent, its broker gone too
    link._heard["0.first"] -= SILENT_S + 1
    link.forget_silent()
    assert "0.first" not in node.online and node.lead and leads == [1, 1]
    link.take("streamre/v1/r/graph/snapshot", b'{"type":"graph","version":7}')
    assert node.version_floor("r") == 7
    store.close()  # an op the journal cannot take is logged, not raised: a repair brings it
    op = make_op("c.z3", 1, 102.0, [("Lars Berg", "Live_In", "Oslo", .9)])
    assert link.take(ops_topic("c1", "r"), json.dumps(op.to_json()).encode()) is None


def test_a_new_clustered_room_shows_the_graph_its_ops_merge_into(tmp_path):
    store, publisher, node, rooms = instance(tmp_path)
    room = rooms.open("fresh")
    assert room.graph is room.facts.ordered.graph  # one graph from the start, before any op
    store.close()
