"""A room's knowledge graph: a synchronous, versioned networkx graph fed with triplets.

`apply` resolves entities to canonical nodes, folds repeated sightings of a fact within the
dedup window into one mention event, and returns a `GraphDelta` (version + 1) holding exactly the
visible nodes and edges it changed, in the shape PROTOCOL.md gives; `snapshot` is the whole
visible graph at its version. A viewer that applies a snapshot and then every later delta ends
with this graph. `apply` is deterministic in its arguments, so replaying the same calls (the
store's journal) rebuilds the same graph, ids and version included.

An edge is visible once its confidence reaches `min_confidence`; a node once it has a visible
edge. Confidence: the highest sighting within a mention event, noisy-or across events.
Memory is bounded: past `max_nodes` or `max_edges`, facts needing a new node or edge are
refused (counted in `refused`); known facts keep being updated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from io import BytesIO
from typing import Iterable

import networkx as nx

from streamre.graph.canonical import EntityResolver, entity_key
from streamre.graph.dedup import DedupWindow
from streamre.settings import setting
from streamre.triplets import Triplet, fact_key


def edge_id(head: str, relation: str, tail: str) -> str:
    """Stable id of a fact, by `fact_key`: the same fact, the same id, always. The graph calls
    it on its node keys, which `fact_key` leaves as they are."""
    return hashlib.sha1("\x1f".join(fact_key(head, relation, tail)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GraphSettings:
    """How a room's graph takes facts in: the dedup window, the confidence shown, the caps,
    and when two names are one entity."""
    dedup_window_s: float = setting(
        60.0, "sightings of a fact this close in meeting time are one mention")
    min_confidence: float = setting(0.0, "confidence an edge needs before it is shown")
    max_nodes: int = setting(20000, "most nodes per room; then new ones are refused")
    max_edges: int = setting(50000, "most edges per room; then new ones are refused")
    fuzzy_threshold: float = setting(
        92.0, "rapidfuzz ratio (0-100) at which two names are one entity")

    def __post_init__(self) -> None:
        if self.dedup_window_s < 0:
            raise ValueError("dedup_window_s must not be negative")
        if not 0 <= self.min_confidence <= 1 or not 0 <= self.fuzzy_threshold <= 100:
            raise ValueError("min_confidence must be 0..1 and fuzzy_threshold 0..100")
        if self.max_nodes < 1 or self.max_edges < 1:
            raise ValueError("max_nodes and max_edges must be at least 1")


@dataclass
class GraphDelta:
    room: str
    version: int
    nodes: list[dict] = field(default_factory=list)
    edges: list[dict] = field(default_factory=list)

    def to_message(self) -> dict:
        return {"type": "graph", "op": "delta", "room": self.room, "version": self.version,
                "nodes": self.nodes, "edges": self.edges}


EVIDENCE_KEPT = 3  # sentences an edge keeps as its evidence, the latest ones
SEGMENTS_KEPT = 10  # segment refs an edge keeps, the latest; the journal's transcript has all


@dataclass(frozen=True)
class Mention:
    """Where a batch of triplets was heard: which session's which segment, said by whom, and
    the sentence as the model heard it."""
    session_id: str
    segment_id: int
    speaker: str | None = None
    continues_previous: bool = False  # the segment continues a forced split
    text: str = ""
    source: str = "speech"  # or "text": a typed chat line or note

    @property
    def segment_ref(self) -> str:
        return f"{self.session_id}/{self.segment_id}"

    def to_json(self) -> dict:
        return {"session_id": self.session_id, "segment_id": self.segment_id,
                "speaker": self.speaker, "continues_previous": self.continues_previous,
                "text": self.text, "source": self.source}

    def evidence(self) -> dict:
        return {"session_id": self.session_id, "segment_id": self.segment_id, "text": self.text,
                "source": self.source}


class RoomGraph:
    """One room's knowledge graph: facts in (`apply`), versioned deltas and snapshots out.

    Args:
        room: the room's name, carried by every message.
        settings: the dedup window, the confidence shown, the caps, the fuzzy threshold.
    """

    def __init__(self, room: str, settings: GraphSettings = GraphSettings()) -> None:
        self.room = room
        self.settings = settings
        self.graph = nx.MultiDiGraph()
        self.version = 0
        self.refused = 0
        self.resolver = EntityResolver(settings.fuzzy_threshold)
        self.dedup = DedupWindow(settings.dedup_window_s)
        self._edge_ends: dict[str, tuple[str, str]] = {}  # edge id -> (head, tail)

    @property
    def node_count(self) -> int:
        return len(self._visible_nodes())

    @property
    def edge_count(self) -> int:
        return sum(1 for *_, d in self.graph.edges(data=True) if self._visible(d))

    def labels(self) -> list[str]:
        """The shown entities' labels, the most recently mentioned first."""
        nodes = sorted(self._visible_nodes(), key=lambda n: -self.graph.nodes[n]["last_seen"])
        return [self.resolver.label(n) for n in nodes]

    def apply(self, triplets: Iterable[Triplet], mention: Mention, now: float) -> GraphDelta | None:
        return self.apply_stating(triplets, mention, now)[0]

    def apply_stating(self, triplets: Iterable[Triplet], mention: Mention, now: float
                      ) -> tuple[GraphDelta | None, list[str]]:
        """`apply`, and the ids of every edge the triplets stated (shown or not, refused
        facts left out): what the mention's transcript segment links to."""
        self.dedup.expire(now)
        changed: dict[str, tuple[str, str]] = {}
        touched: dict[str, None] = {}
        for t in triplets:
            relation = " ".join(t.relation.split())
            if not (t.head.strip() and t.tail.strip() and relation):
                continue
            if not self._has_room_for(t, relation):
                self.refused += 1
                continue
            head, tail = self.resolver.resolve(t.head), self.resolver.resolve(t.tail)
            eid = edge_id(head, relation, tail)
            new_event = self.dedup.observe(eid, now, mention.session_id, mention.segment_id,
                                           mention.continues_previous)
            for node in (head, tail):
                self._touch_node(node, now, new_event)
            self._touch_edge(head, tail, eid, relation, t.confidence, mention, now, new_event)
            changed[eid] = (head, tail)
            touched.update({head: None, tail: None})
        visible = {eid: ends for eid, ends in changed.items()
                   if self._visible(self.graph.edges[ends[0], ends[1], eid])}
        # A fact on a hidden edge still changes its nodes: shown nodes must say so.
        nodes = [n for n in touched if self._node_visible(n)]
        if not visible and not nodes:
            return None, list(changed)
        self.version += 1
        return GraphDelta(self.room, self.version, [self._node_json(n) for n in nodes],
                          [self._edge_json(h, t, k) for k, (h, t) in visible.items()]), \
            list(changed)

    def _has_room_for(self, t: Triplet, relation: str) -> bool:
        head, tail = self.resolver.lookup(t.head), self.resolver.lookup(t.tail)
        new_nodes = {entity_key(s) for s, node in ((t.head, head), (t.tail, tail)) if node is None}
        if len(self.graph) + len(new_nodes) > self.settings.max_nodes:
            return False
        known = head is not None and tail is not None and \
            edge_id(head, relation, tail) in self._edge_ends
        return known or len(self._edge_ends) < self.settings.max_edges

    def _touch_node(self, node: str, now: float, new_event: bool) -> None:
        if node not in self.graph:
            self.graph.add_node(node, mentions=0, first_seen=now, last_seen=now)
        attrs = self.graph.nodes[node]
        attrs["mentions"] += int(new_event)
        attrs["first_seen"] = min(attrs["first_seen"], now)
        attrs["last_seen"] = max(attrs["last_seen"], now)

    def _touch_edge(self, head: str, tail: str, eid: str, relation: str, confidence: float,
                    mention: Mention, now: float, new_event: bool) -> None:
        confidence = min(1.0, max(0.0, float(confidence)))
        if not self.graph.has_edge(head, tail, key=eid):
            self._edge_ends[eid] = (head, tail)
            self.graph.add_edge(head, tail, key=eid, relation=relation, mentions=0,
                                first_seen=now, last_seen=now, segments=[], segment_count=0,
                                speakers=[],
                                evidence=[], _miss=1.0, _current=0.0)
        e = self.graph.edges[head, tail, eid]
        if new_event:  # the previous event is closed: fold it into the noisy-or
            e["_miss"] *= 1 - e["_current"]
            e["_current"] = confidence
            e["mentions"] += 1
        else:
            e["_current"] = max(e["_current"], confidence)
        e["confidence"] = 1 - e["_miss"] * (1 - e["_current"])
        e["first_seen"], e["last_seen"] = min(e["first_seen"], now), max(e["last_seen"], now)
        if e["segments"][-1:] != [mention.segment_ref]:  # one batch is one segment
            e["segments"] = (e["segments"] + [mention.segment_ref])[-SEGMENTS_KEPT:]
            e["segment_count"] += 1
        if mention.speaker and mention.speaker not in e["speakers"]:
            e["speakers"] = sorted(e["speakers"] + [mention.speaker])
        if mention.text and mention.evidence() not in e["evidence"]:
            e["evidence"] = (e["evidence"] + [mention.evidence()])[-EVIDENCE_KEPT:]

    # -- views ------------------------------------------------------------------------------

    def _visible(self, edge: dict) -> bool:
        return edge["confidence"] >= self.settings.min_confidence

    def _node_visible(self, node: str) -> bool:
        return any(self._visible(d) for *_, d in self.graph.out_edges(node, data=True)) or \
            any(self._visible(d) for *_, d in self.graph.in_edges(node, data=True))

    def _visible_nodes(self) -> list[str]:
        nodes = {n for h, t, d in self.graph.edges(data=True) if self._visible(d) for n in (h, t)}
        return [n for n in self.graph.nodes if n in nodes]

    def _node_json(self, node: str) -> dict:
        attrs = self.graph.nodes[node]
        data = {"id": node, "label": self.resolver.label(node), "aliases":
                self.resolver.aliases(node), **attrs}
        entity_type = self.resolver.entity_type(node)
        if entity_type:
            data["type"] = entity_type
        return data

    def _edge_json(self, head: str, tail: str, key: str) -> dict:
        e = self.graph.edges[head, tail, key]
        public = {k: ([dict(x) if isinstance(x, dict) else x for x in v]
                      if isinstance(v, list) else v)
                  for k, v in e.items() if not k.startswith("_")}
        public["confidence"] = round(public["confidence"], 6)
        return {"id": key, "source": head, "target": tail, **public}

    def nodes_json(self) -> list[dict]:
        return [self._node_json(n) for n in self._visible_nodes()]

    def edges_json(self) -> list[dict]:
        return [self._edge_json(h, t, k) for h, t, k, d in self.graph.edges(keys=True, data=True)
                if self._visible(d)]

    def snapshot(self) -> dict:
        return {"type": "graph", "op": "snapshot", "room": self.room, "version": self.version,
                "nodes": self.nodes_json(), "edges": self.edges_json()}

    def to_json(self) -> dict:
        """Node-link JSON for `GET /v1/rooms/{room}/graph` and `streamre graph export`."""
        return {"room": self.room, "version": self.version, "directed": True, "multigraph": True,
                "nodes": self.nodes_json(), "edges": self.edges_json()}

    def to_graphml(self) -> str:
        return graphml(self.to_json())


def graphml(graph_json: dict) -> str:
    """Node-link JSON (`to_json`) as GraphML; lists become JSON strings (GraphML has scalars)."""
    flat = nx.MultiDiGraph()
    for node in graph_json["nodes"]:
        flat.add_node(node["id"], **_scalars({k: v for k, v in node.items() if k != "id"}))
    for edge in graph_json["edges"]:
        attrs = {k: v for k, v in edge.items() if k not in ("source", "target")}
        flat.add_edge(edge["source"], edge["target"], key=edge["id"], **_scalars(attrs))
    buffer = BytesIO()
    nx.write_graphml(flat, buffer)
    return buffer.getvalue().decode()


def _scalars(attrs: dict) -> dict:
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in attrs.items()}
