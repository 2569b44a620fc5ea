"""A room's knowledge graph: a synchronous, versioned networkx graph fed with triplets.

`apply` upserts nodes and edges and returns a `GraphDelta` (version + 1) holding exactly the
nodes and edges it changed, in the shape PROTOCOL.md gives; `snapshot` is the whole graph at its
version. A viewer that applies a snapshot and then every later delta ends with this graph.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from io import BytesIO
from typing import Iterable

import networkx as nx

from streamre.triplets import Triplet


def entity_key(text: str) -> str:
    """Canonical key of an entity mention: case and whitespace folded."""
    return " ".join(text.casefold().split())


def edge_id(head: str, relation: str, tail: str) -> str:
    """Stable id of a canonical (head, relation, tail): the same fact, the same id, always."""
    canonical = "\x1f".join((entity_key(head), relation.strip(), entity_key(tail)))
    return hashlib.sha1(canonical.encode()).hexdigest()[:16]


@dataclass
class GraphDelta:
    room: str
    version: int
    nodes: list[dict] = field(default_factory=list)
    edges: list[dict] = field(default_factory=list)

    def to_message(self) -> dict:
        return {"type": "graph", "op": "delta", "room": self.room, "version": self.version,
                "nodes": self.nodes, "edges": self.edges}


@dataclass(frozen=True)
class Mention:
    """Where a batch of triplets was heard: which session's which segment, said by whom."""
    session_id: str
    segment_id: int
    speaker: str | None = None

    @property
    def segment_ref(self) -> str:
        return f"{self.session_id}/{self.segment_id}"


class RoomGraph:
    def __init__(self, room: str) -> None:
        self.room = room
        self.graph = nx.MultiDiGraph()
        self.version = 0

    @property
    def node_count(self) -> int:
        return self.graph.number_of_nodes()

    @property
    def edge_count(self) -> int:
        return self.graph.number_of_edges()

    def apply(self, triplets: Iterable[Triplet], mention: Mention,
              now: float | None = None) -> GraphDelta | None:
        now = time.time() if now is None else now
        changed_nodes: dict[str, None] = {}
        changed_edges: dict[str, tuple[str, str]] = {}
        for t in triplets:
            head, tail = self._upsert_node(t.head, now), self._upsert_node(t.tail, now)
            changed_nodes.update({head: None, tail: None})
            eid = edge_id(t.head, t.relation, t.tail)
            if self.graph.has_edge(head, tail, key=eid):
                e = self.graph.edges[head, tail, eid]
                e["mentions"] += 1
                e["last_seen"] = now
                # Independent mentions: the fact is wrong only if every mention is (noisy-or).
                e["confidence"] = 1 - (1 - e["confidence"]) * (1 - t.confidence)
                if mention.segment_ref not in e["segments"]:
                    e["segments"].append(mention.segment_ref)
                if mention.speaker and mention.speaker not in e["speakers"]:
                    e["speakers"].append(mention.speaker)
            else:
                self.graph.add_edge(
                    head, tail, key=eid, relation=t.relation.strip(), confidence=t.confidence,
                    mentions=1, first_seen=now, last_seen=now, segments=[mention.segment_ref],
                    speakers=[mention.speaker] if mention.speaker else [])
            changed_edges[eid] = (head, tail)
        if not changed_edges:
            return None
        self.version += 1
        return GraphDelta(self.room, self.version,
                          [self._node_json(n) for n in changed_nodes],
                          [self._edge_json(h, t, k) for k, (h, t) in changed_edges.items()])

    def _upsert_node(self, label: str, now: float) -> str:
        key = entity_key(label)
        if key in self.graph:
            n = self.graph.nodes[key]
            n["mentions"] += 1
            n["last_seen"] = now
        else:
            self.graph.add_node(key, label=" ".join(label.split()), mentions=1, first_seen=now,
                                last_seen=now)
        return key

    def _node_json(self, key: str) -> dict:
        return {"id": key, **self.graph.nodes[key]}

    def _edge_json(self, head: str, tail: str, key: str) -> dict:
        e = self.graph.edges[head, tail, key]
        return {"id": key, "source": head, "target": tail, **{
            k: (list(v) if isinstance(v, list) else v) for k, v in e.items()}}

    def nodes_json(self) -> list[dict]:
        return [self._node_json(n) for n in self.graph.nodes]

    def edges_json(self) -> list[dict]:
        return [self._edge_json(h, t, k) for h, t, k in self.graph.edges(keys=True)]

    def snapshot(self) -> dict:
        return {"type": "graph", "op": "snapshot", "room": self.room, "version": self.version,
                "nodes": self.nodes_json(), "edges": self.edges_json()}

    def to_json(self) -> dict:
        """Node-link JSON for `GET /v1/rooms/{room}/graph`."""
        return {"room": self.room, "version": self.version, "directed": True, "multigraph": True,
                "nodes": self.nodes_json(), "edges": self.edges_json()}

    def to_graphml(self) -> str:
        # GraphML holds scalars only: lists become JSON strings.
        flat = nx.MultiDiGraph()
        for n, attrs in self.graph.nodes(data=True):
            flat.add_node(n, **_scalars(attrs))
        for h, t, k, attrs in self.graph.edges(keys=True, data=True):
            flat.add_edge(h, t, key=k, id=k, **_scalars(attrs))
        buffer = BytesIO()
        nx.write_graphml(flat, buffer)
        return buffer.getvalue().decode()


def _scalars(attrs: dict) -> dict:
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in attrs.items()}
