"""What a viewer is told a room's graph changed: a `GraphDelta` (PROTOCOL.md's `graph` delta),
and the delta between two states of a graph (`delta_between`), for a graph replayed whole after a
correction or a merge."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GraphDelta:
    room: str
    version: int
    nodes: list[dict] = field(default_factory=list)
    edges: list[dict] = field(default_factory=list)
    removed_edges: list[str] = field(default_factory=list)  # after a correction or merge
    removed_nodes: list[str] = field(default_factory=list)

    def to_message(self) -> dict:
        message = {"type": "graph", "op": "delta", "room": self.room, "version": self.version,
                   "nodes": self.nodes, "edges": self.edges}
        if self.removed_edges or self.removed_nodes:  # PROTOCOL 1.3: only when something left
            message["removed_edges"] = self.removed_edges
            message["removed_nodes"] = self.removed_nodes
        return message


def delta_between(room: str, version: int, before: tuple[list[dict], list[dict]],
                  after: tuple[list[dict], list[dict]]) -> GraphDelta | None:
    """The delta (at `version`) from one (nodes, edges) of a graph to another: what is new or
    differs, and the ids of what is gone; None if nothing does."""
    nodes, edges = ({x["id"]: x for x in xs} for xs in before)
    now_nodes, now_edges = ({x["id"]: x for x in xs} for xs in after)
    delta = GraphDelta(room, version, [n for i, n in now_nodes.items() if nodes.get(i) != n],
                       [e for i, e in now_edges.items() if edges.get(i) != e],
                       sorted(edges.keys() - now_edges.keys()),
                       sorted(nodes.keys() - now_nodes.keys()))
    if delta.nodes or delta.edges or delta.removed_edges or delta.removed_nodes:
        return delta
    return None
