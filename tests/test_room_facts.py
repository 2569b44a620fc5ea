"""A room's facts as a pure core (`streamre.server.facts`): segments and ops in, what to
journal, announce, publish and send out, tested with data alone (no journal, no sockets)."""

from __future__ import annotations

import pytest

from streamre.cluster.node import ClusterNode
from streamre.graph import GraphSettings, Mention, RoomGraph
from streamre.graph.ordered import OrderedGraph
from streamre.server.facts import ClusterFacts, LocalFacts
from streamre.triplets import Triplet

from test_cluster_core import make_op

SETTINGS = GraphSettings(dedup_window_s=0.0, max_edges=2)
WORKS = Triplet("David Chen", "Work_For", "World Bank", .9)
LIVES = Triplet("Maria Lopez", "Live_In", "Boston", .9)
KILLS = Triplet("Oswald", "Kill", "Kennedy", .9)


def test_a_lone_rooms_segment_states_its_facts_and_says_what_to_announce():
    facts = LocalFacts(RoomGraph("r", SETTINGS))
    first = facts.record(Mention("s", 0, "ana", text="one"), [WORKS], 10.0, 9.0, 0.0, 1.5)
    assert first.local and first.op is None and not first.rebuilt and first.refused == 0
    (edge,) = first.delta.edges
    assert first.said.edges == (edge["id"],) and first.said.text == "one"
    assert (first.said.start, first.said.end, first.said.time) == (0.0, 1.5, 9.0)
    quiet = facts.record(Mention("s", 1, "ana", text="hm"), [], 11.0, 11.0, 2.0, 2.5)
    assert quiet.delta is None and quiet.said.edges == ()  # a line with no fact still counts
    full = facts.record(Mention("s", 2, "ana"), [LIVES, KILLS], 12.0, 12.0, 3.0, 4.0)
    assert full.refused == 1 and len(full.said.edges) == 1  # the caps took one of two
    assert facts.claim_version() and facts.publishes_graph
    with pytest.raises(ValueError, match="no cluster"):
        facts.merge(make_op("b", 1, 5.0, []))


def test_a_clustered_rooms_segments_become_its_ops_and_old_ops_replay_in_order():
    node = ClusterNode("c1", "a", idle_s=3600, clock=lambda: 100.0)
    sent, replays = [], []
    node.send, node.on_replay = sent.append, lambda: replays.append(1)
    facts = ClusterFacts(OrderedGraph("r", SETTINGS), node)
    mine = facts.record(Mention("s", 0, "ana", text="one"), [WORKS], 10.0, 9.0, 0.0, 1.5)
    assert mine.local and (mine.op.origin, mine.op.seq) == ("a", 1) and mine.delta is not None
    facts.journaled(mine.op, mine.rebuilt)
    facts.announced(mine.op, mine.local)
    assert sent == [mine.op] and node.heads.head("r", "a") == 1
    assert facts.merge(mine.op) is None  # held already: nothing to do
    # Another instance's op keyed before ours: the graph is replayed in order.
    theirs = facts.merge(make_op("b", 1, 50.0, [("Maria Lopez", "Live_In", "Boston", .9)]))
    assert not theirs.local and theirs.rebuilt and theirs.said.speaker == "B"
    facts.journaled(theirs.op, theirs.rebuilt)
    facts.announced(theirs.op, theirs.local)
    assert sent == [mine.op] and replays == [1]  # only our own ops go out
    assert facts.graph.edge_count == 2 and facts.graph is facts.ordered.graph


def test_a_clustered_room_jumps_past_the_version_another_lead_published():
    node = ClusterNode("c1", "a", idle_s=3600)
    facts = ClusterFacts(OrderedGraph("r", SETTINGS), node)
    facts.record(Mention("s", 0), [WORKS], 10.0, 9.0, None, None)
    node.published["r"] = 40
    assert not facts.claim_version() and facts.graph.version == 41  # a snapshot goes instead
    assert facts.claim_version()
    node.online["0.first"] = {}
    assert not facts.publishes_graph  # "0.first" sorts first: it leads
