"""The room graph: stable ids, versioned deltas, snapshot + deltas = the graph, exports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from streamre.graph import Mention, RoomGraph, edge_id
from streamre.triplets import Triplet


def test_deltas_replayed_on_a_snapshot_equal_the_graph():
    room = RoomGraph("r")
    seen = room.snapshot()
    nodes = {n["id"]: n for n in seen["nodes"]}
    edges = {e["id"]: e for e in seen["edges"]}
    facts = [[Triplet("David Chen", "Work_For", "World Bank", 0.5)],
             [Triplet("david  chen", "Work_For", "World Bank", 0.5), Triplet("A", "Kill", "B")],
             [], [Triplet("B", "Live_In", "Paris", 0.9)]]
    for i, triplets in enumerate(facts):
        delta = room.apply(triplets, Mention("s1", i, "alice"), now=100.0 + i)
        if delta is None:
            assert not triplets
            continue
        assert delta.version == seen["version"] + 1
        seen["version"] = delta.version
        nodes.update({n["id"]: n for n in delta.nodes})
        edges.update({e["id"]: e for e in delta.edges})
    final = room.snapshot()
    assert final["version"] == 3
    assert sorted(final["nodes"], key=lambda n: n["id"]) == sorted(nodes.values(), key=lambda n: n["id"])
    assert sorted(final["edges"], key=lambda e: e["id"]) == sorted(edges.values(), key=lambda e: e["id"])
    works = edges[edge_id("David Chen", "Work_For", "World Bank")]
    assert works["mentions"] == 2 and works["confidence"] == 0.75  # noisy-or of 0.5 and 0.5
    assert works["segments"] == ["s1/0", "s1/1"] and works["speakers"] == ["alice"]


def test_edge_ids_are_stable_and_canonical():
    assert edge_id("David Chen", "Work_For", "World Bank") == \
        edge_id(" david chen", "Work_For", "WORLD  bank")
    assert edge_id("A", "Kill", "B") != edge_id("B", "Kill", "A")
    assert len(edge_id("A", "Kill", "B")) == 16


def test_exports_are_valid_json_and_graphml():
    room = RoomGraph("r")
    room.apply([Triplet("A", "Kill", "B", 0.8)], Mention("s", 0))
    data = json.loads(json.dumps(room.to_json()))
    assert data["version"] == 1 and len(data["nodes"]) == 2 and len(data["edges"]) == 1
    tree = ET.fromstring(room.to_graphml())
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    assert len(tree.findall(".//g:node", ns)) == 2 and len(tree.findall(".//g:edge", ns)) == 1
    assert '["s/0"]' in room.to_graphml()
