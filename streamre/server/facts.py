"""A room's facts as a pure core, the room's counterpart of `SessionProtocol`: a segment, a typed
line or another instance's op goes in; out comes a `Recorded`, what the shell must journal,
then announce to the room's members and publish. No I/O here: the shell
(`streamre.server.room.Room`) journals before it announces, and when the journal refuses,
loads the room again from it.

Two kinds, one per way of serving:
- `LocalFacts`: one server alone; its graph takes each segment's facts as they come.
- `ClusterFacts`: `serve --cluster`; each segment becomes an op of this instance, and the graph
  is the replay of every op held, in one order (`OrderedGraph`), whoever made them.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamre.cluster.node import ClusterNode
from streamre.graph import GraphDelta, Mention, RoomGraph
from streamre.graph.ops import Op
from streamre.graph.ordered import OrderedGraph
from streamre.graph.transcript import Said
from streamre.triplets import Triplet


@dataclass(frozen=True)
class Recorded:
    """What one segment (or typed line, or op) did to a room, for the shell to carry out.

    said: its transcript line, with the edges it stated.
    triplets, mention, at: what the journal keeps of it; `op` too, in a cluster.
    delta: the graph's change to announce (None: nothing shown changed).
    rebuilt: the graph was replayed in order: everyone takes the whole graph again.
    refused: facts the room's caps refused.
    local: heard here: its transcript line is this instance's to publish, and its op (in a
        cluster) to send to the others.
    """
    said: Said
    triplets: list[Triplet]
    mention: Mention
    at: float
    op: Op | None
    delta: GraphDelta | None
    rebuilt: bool
    refused: int
    local: bool


class LocalFacts:
    """A lone server's room: the graph takes facts as they come."""

    node = None  # in no cluster

    def __init__(self, graph: RoomGraph) -> None:
        self.graph = graph

    def record(self, mention: Mention, triplets: list[Triplet], at: float, began: float,
               start: float | None, end: float | None) -> Recorded:
        refused = self.graph.refused
        # No facts, no call: the graph is exactly what replaying its facts rebuilds.
        delta, stated = self.graph.apply_stating(triplets, mention, at) if triplets \
            else (None, [])
        said = Said(mention.session_id, mention.segment_id, mention.speaker, mention.source,
                    start, end, began, mention.text, tuple(stated))
        return Recorded(said, triplets, mention, at, None, delta, False,
                        self.graph.refused - refused, True)

    def merge(self, op: Op) -> Recorded | None:
        raise ValueError(f"room {self.graph.room!r} is in no cluster: it takes no ops")

    def journaled(self, recorded: Recorded) -> None:
        """The journal has it (nothing more to keep here)."""

    def announced(self, recorded: Recorded) -> None:
        """The members and MQTT have it (no one else to tell)."""

    def claim_version(self) -> bool:
        """A lone server's versions are its own."""
        return True

    @property
    def publishes_graph(self) -> bool:
        return True


class ClusterFacts:
    """A clustered room: its graph is the ordered replay of every op held, and this instance
    (`node`) numbers its own segments' ops."""

    def __init__(self, ordered: OrderedGraph, node: ClusterNode) -> None:
        self.ordered, self.node = ordered, node

    @property
    def graph(self) -> RoomGraph:
        return self.ordered.graph  # a replay makes a new one

    def record(self, mention: Mention, triplets: list[Triplet], at: float, began: float,
               start: float | None, end: float | None) -> Recorded:
        """This instance's segment, as its next op (never held before, so never None)."""
        return self.merge(self.node.make_op(self.ordered.room, mention, triplets, at, began,
                                            start, end))

    def merge(self, op: Op) -> Recorded | None:
        """An op, this instance's or another's, merged in order; None if already held."""
        refused = self.graph.refused
        merged = self.ordered.merge(op)
        if merged is None:
            return None
        return Recorded(op.said(merged.stated), list(op.triplets), op.mention(), op.at, op,
                        merged.delta, merged.rebuilt, self.graph.refused - refused,
                        op.origin == self.node.origin)

    def journaled(self, recorded: Recorded) -> None:
        """The journal has the op: this instance holds it (its heads say so)."""
        self.node.held(recorded.op)
        if recorded.rebuilt:
            self.node.on_replay()

    def announced(self, recorded: Recorded) -> None:
        """This instance's own op goes to the others once its members have it."""
        if recorded.local:
            self.node.send(recorded.op)

    def claim_version(self) -> bool:
        """Keep this room's versions past the last one another lead published (else
        subscribers would take this instance's as old); False if it had to jump, and a
        snapshot must go out instead of a delta."""
        floor = self.node.version_floor(self.ordered.room)
        if self.graph.version > floor:
            return True
        self.graph.version = floor + 1
        return False

    @property
    def publishes_graph(self) -> bool:
        """Only the cluster's lead publishes the rooms' graphs."""
        return self.node.lead
