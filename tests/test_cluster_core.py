"""The cluster's pure parts: ops as JSON, the order-free merge, heads and who repairs."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamre.cluster.heads import Heads, repairer, repairs
from streamre.cluster.merge import OrderedGraph
from streamre.cluster.ops import BadOp, Op, ops_topic
from streamre.graph import GraphSettings, RoomGraph
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
