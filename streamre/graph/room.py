"""A room's knowledge graph: a synchronous, versioned networkx graph fed with triplets.

`apply` resolves entities to canonical nodes, folds repeated sightings of a fact within the
dedup window into one mention event, and returns a `GraphDelta` (version + 1) holding exactly the
visible nodes and edges it changed, in the shape PROTOCOL.md gives; `snapshot` is the whole
visible graph at its version. A viewer that applies a snapshot and then every later delta ends
with this graph. `apply` is deterministic in its arguments, so replaying the same calls (the
store's journal) rebuilds the same graph, ids and version included.

A person may `change` what the room was told: correct one line (its facts read again from the
corrected text), merge two entities (one name is another) or name a voice of a session (its
lines are that speaker's). The graph keeps every batch as it was heard, and after such a change
it is the replay of them all with every change in force (`ChangesInForce`), as if the line had
been heard right; the delta says what differs (`removed_edges`,
`removed_nodes` for what is gone), at version + 1. So mentions that the dedup window folds
stay folded: two spellings of one fact said within the window become one mention, not two.

An edge is visible once its confidence reaches `min_confidence`; a node once it has a visible
edge. Confidence: the highest sighting within a mention event, noisy-or across events.
Memory is bounded: past `max_nodes` or `max_edges`, facts needing a new node or edge are
refused (counted in `refused`); known facts keep being updated. The batches kept for replays
grow with the meeting (a few hundred bytes a segment).
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import networkx as nx

from streamre.graph.canonical import EntityResolver, entity_key
from streamre.graph.changes import ChangesInForce
from streamre.graph.dedup import DedupWindow
from streamre.graph.delta import GraphDelta, delta_between
from streamre.graph.entries import Batch, Change, Correction, EntityMerge, Mention, VoiceName
from streamre.graph.export import graphml
from streamre.graph.settings import GraphSettings
from streamre.triplets import Triplet, fact_key


def edge_id(head: str, relation: str, tail: str) -> str:
    """Stable id of a fact, by `fact_key`: the same fact, the same id, always. The graph calls
    it on its node keys, which `fact_key` leaves as they are."""
    return hashlib.sha1("\x1f".join(fact_key(head, relation, tail)).encode()).hexdigest()[:16]


EVIDENCE_KEPT = 3  # sentences an edge keeps as its evidence, the latest ones
SEGMENTS_KEPT = 10  # segment refs an edge keeps, the latest; the journal's transcript has all


class RoomGraph:
    """One room's knowledge graph: facts in (`apply`), versioned deltas and snapshots out.

    Args:
        room: the room's name, carried by every message.
        settings: the dedup window, the confidence shown, the caps, the fuzzy threshold.
    """

    def __init__(self, room: str, settings: GraphSettings | None = None) -> None:
        self.room = room
        self.settings = settings or GraphSettings()
        self.version = 0
        self._batches: list[Batch] = []  # every segment's, as heard, in the order applied
        self.changes = ChangesInForce()
        self._clear()

    def _clear(self) -> None:
        """The derived graph, empty: what a replay of the batches starts from."""
        self.graph = nx.MultiDiGraph()
        self.refused = 0
        self.resolver = EntityResolver(self.settings.fuzzy_threshold)
        self.dedup = DedupWindow(self.settings.dedup_window_s)
        self._edge_ends: dict[str, tuple[str, str]] = {}  # edge id -> (head, tail)
        self.stated: dict[str, tuple[str, ...]] = {}  # segment ref -> the edges it stated

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
        facts left out): what the mention's transcript segment links to. A segment with no
        facts is kept too: a correction may give it some. A segment already corrected (its
        correction came first, from another instance) is taken as corrected."""
        batch = Batch(tuple(triplets), mention, now)
        self._batches.append(batch)
        changed, touched = self._take(batch)
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

    def _take(self, batch: Batch) -> tuple[dict[str, tuple[str, str]], dict[str, None]]:
        """One batch into the derived graph, with what people changed in force: the edges it
        changed (id -> ends) and the nodes it touched."""
        mention, triplets = self.changes.as_changed(batch)
        now = batch.at
        self.dedup.expire(now)
        changed: dict[str, tuple[str, str]] = {}
        touched: dict[str, None] = {}
        for t in triplets:
            relation = " ".join(t.relation.split())
            if not (t.head.strip() and t.tail.strip() and relation):
                continue
            t = Triplet(self.meant(t.head), relation, self.meant(t.tail), t.confidence,
                        t.head_type, t.tail_type)
            if not self._has_room_for(t, relation):
                self.refused += 1
                continue
            head, tail = self.resolver.resolve(t.head), self.resolver.resolve(t.tail)
            eid = edge_id(head, relation, tail)
            new_event = self.dedup.observe(eid, now, mention.session_id, mention.segment_id,
                                           mention.continues_previous)
            for node, tagged in ((head, t.head_type), (tail, t.tail_type)):
                self._touch_node(node, now, new_event, tagged)
            self._touch_edge(head, tail, eid, relation, t.confidence, mention, now, new_event)
            changed[eid] = (head, tail)
            touched.update({head: None, tail: None})
        self.stated[mention.segment_ref] = tuple(changed)
        return changed, touched

    def meant(self, name: str) -> str:
        """The name a person said `name` is (a merge, `change`), or `name`."""
        return self.changes.meant_name(name)

    # -- what people change -----------------------------------------------------------------

    def correction_of(self, session_id: str, segment_id: int) -> Correction | None:
        """The latest correction of a segment, if it has one."""
        return self.changes.corrections.get(Mention(session_id, segment_id).segment_ref)

    def node_of(self, name: str) -> str | None:
        """The shown node a name is (by its key, or an alias's), or None."""
        node = self.resolver.lookup(name)
        return node if node is not None and node in self._visible_nodes() else None

    def change(self, change: Change, wait: bool = True) -> GraphDelta | None:
        """A correction, a merge or a voice's name, in force from now on and on everything
        heard before: the graph replayed, and the delta of what differs (None if nothing shown
        did). A correction of a segment not heard yet waits for it (`wait`, in a cluster, where
        ops cross); without `wait` (a lone server's line from before segments with no facts
        were kept) it is taken as a new segment at the end."""
        if isinstance(change, EntityMerge):
            return self._merge(change)
        if isinstance(change, VoiceName):
            self.changes.name_voice(change)
            return self._replayed()
        ref = change.mention.segment_ref
        self.changes.corrections[ref] = change
        if ref in self.stated:  # heard: every batch taken states its edges, if none
            return self._replayed()
        if wait:
            return None
        return self.apply(change.triplets, change.mention, change.at)

    def _merge(self, merge: EntityMerge) -> GraphDelta | None:
        """`merge.source`, every spelling its node was heard as, is `merge.into` from now on:
        the node that `into` names, or `into` itself if it names none or this one (a
        rename). No chains: every key maps straight to a name whose key maps nowhere."""
        node = self.resolver.lookup(merge.source)
        into = self.meant(merge.into)
        if node is not None and self.resolver.lookup(into) == node:
            self.changes.meant.pop(entity_key(merge.into), None)
            into = merge.into
        sources = {entity_key(merge.source), *(self.resolver.keys_of(node) if node else ())}
        sources.discard(entity_key(into))
        if not sources:
            return None
        self.changes.merge(sources, into)
        return self._replayed()

    def _replayed(self) -> GraphDelta | None:
        """Replay every batch with the changes in force; the delta from the graph before."""
        before = self.nodes_json(), self.edges_json()
        self._clear()
        for batch in self._batches:
            self._take(batch)
        delta = delta_between(self.room, self.version + 1, before,
                              (self.nodes_json(), self.edges_json()))
        if delta is not None:
            self.version += 1
        return delta

    def _has_room_for(self, t: Triplet, relation: str) -> bool:
        head, tail = self.resolver.lookup(t.head), self.resolver.lookup(t.tail)
        new_nodes = {entity_key(s) for s, node in ((t.head, head), (t.tail, tail)) if node is None}
        if len(self.graph) + len(new_nodes) > self.settings.max_nodes:
            return False
        known = head is not None and tail is not None and \
            edge_id(head, relation, tail) in self._edge_ends
        return known or len(self._edge_ends) < self.settings.max_edges

    def _touch_node(self, node: str, now: float, new_event: bool, tagged: str | None) -> None:
        if node not in self.graph:
            self.graph.add_node(node, mentions=0, first_seen=now, last_seen=now, _types={})
        attrs = self.graph.nodes[node]
        if tagged:  # what its readers tagged it as, counted: the node's type is the most said
            attrs["_types"][tagged] = attrs["_types"].get(tagged, 0) + 1
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
                self.resolver.aliases(node),
                **{k: v for k, v in attrs.items() if not k.startswith("_")}}
        types = attrs["_types"]
        if types:  # PROTOCOL 1.3: only when known; ties go to the first in name order
            data["type"] = min(types, key=lambda t: (-types[t], t))
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
