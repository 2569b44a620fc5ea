"""A room's facts as a pure core, the room's counterpart of `SessionProtocol`: a segment, a typed
line or another instance's op goes in; out comes a `Recorded`, what the shell must journal,
then announce to the room's members and publish. A person's correction of a line, merge of
two entities or name for a voice goes in the same way, and out comes a `Changed`. No I/O here: the shell
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
from streamre.graph.entries import Change, EntityMerge, VoiceName
from streamre.graph.ops import Op
from streamre.graph.ordered import OrderedGraph
from streamre.graph.transcript import Said
from streamre.hearing.learnt import learnable, learnt_pairs
from streamre.hearing.names import Learnt
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


@dataclass(frozen=True)
class Changed:
    """What a correction or merge (or another instance's op of one) did to a room.

    change: what the person did; `op` is its op, in a cluster.
    delta: the graph's change to announce, with what left (None: nothing shown changed).
    rebuilt: the graph was replayed in order: everyone takes the whole graph again.
    restated: the lines whose stated edges changed, (session, segment) -> edge ids now.
    local: made here: its op (in a cluster) is this instance's to send.
    learnt: what the room learns from it (heard words -> meant name), whoever made it.
    """
    change: Change
    op: Op | None
    delta: GraphDelta | None
    rebuilt: bool
    restated: dict[tuple[str, int], tuple[str, ...]]
    local: bool
    learnt: tuple[Learnt, ...] = ()


def taught(change: Change) -> tuple[Learnt, ...]:
    """The pairs a correction (heard line -> corrected line) or a merge (from -> into)
    teaches the room (`streamre.hearing.learnt`); a voice's name teaches none."""
    if isinstance(change, VoiceName):
        return ()
    if isinstance(change, EntityMerge):
        pair = Learnt(" ".join(change.source.split()), " ".join(change.into.split()))
        return (pair,) if learnable(pair) else ()
    return tuple(learnt_pairs(change.heard, change.mention.text))


def _restated(before: dict[str, tuple[str, ...]], graph: RoomGraph
              ) -> dict[tuple[str, int], tuple[str, ...]]:
    """The lines whose stated edges differ from `before` (segment ref -> edges)."""
    changed = {}
    for ref, edges in graph.stated.items():
        if before.get(ref, ()) != edges:
            session_id, _, segment_id = ref.rpartition("/")
            changed[session_id, int(segment_id)] = edges
    return changed


class LocalFacts:
    """A lone server's room: the graph takes facts as they come."""

    node = None  # in no cluster

    def __init__(self, graph: RoomGraph) -> None:
        self.graph = graph

    def record(self, mention: Mention, triplets: list[Triplet], at: float, began: float,
               start: float | None, end: float | None) -> Recorded:
        refused = self.graph.refused
        delta, stated = self.graph.apply_stating(triplets, mention, at)
        said = Said(mention.session_id, mention.segment_id,
                    self.graph.changes.speaker_of(mention), mention.source, start, end, began,
                    mention.text, tuple(stated), voice=mention.voice)
        return Recorded(said, triplets, mention, at, None, delta, False,
                        self.graph.refused - refused, True)

    def merge(self, op: Op) -> Recorded | None:
        raise ValueError(f"room {self.graph.room!r} is in no cluster: it takes no ops")

    def change(self, change: Change) -> Changed:
        """A person's correction or merge, in force at once (a line that kept no batch,
        from an older journal, is taken as a new one)."""
        before = dict(self.graph.stated)
        delta = self.graph.change(change, wait=False)
        return Changed(change, None, delta, False, _restated(before, self.graph), True,
                       taught(change))

    def journaled(self, op: Op | None, rebuilt: bool) -> None:
        """The journal has it (nothing more to keep here)."""

    def announced(self, op: Op | None, local: bool) -> None:
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

    def change(self, change: Change) -> Changed:
        """This instance's correction or merge, as its next op."""
        return self.merge(self.node.make_change_op(self.ordered.room, change))

    def merge(self, op: Op) -> Recorded | Changed | None:
        """An op, this instance's or another's, merged in order; None if already held. A
        line whose correction came first (from another instance) is recorded corrected."""
        refused = self.graph.refused
        # Only a change restates lines: a segment's op (every one said) copies nothing.
        before = dict(self.graph.stated) if op.change is not None else {}
        merged = self.ordered.merge(op)
        if merged is None:
            return None
        local = op.origin == self.node.origin
        if op.change is not None:
            return Changed(op.change, op, merged.delta, merged.rebuilt,
                           _restated(before, self.graph), local, taught(op.change))
        said = op.said(merged.stated, self.graph.changes.speaker_of(op.mention()))
        correction = self.graph.correction_of(said.session_id, said.segment_id)
        if correction is not None:
            said = said.corrected(correction.mention.text, correction.by)
        return Recorded(said, list(op.triplets), op.mention(), op.at, op, merged.delta,
                        merged.rebuilt, self.graph.refused - refused, local)

    def journaled(self, op: Op | None, rebuilt: bool) -> None:
        """The journal has the op: this instance holds it (its heads say so)."""
        self.node.held(op)
        if rebuilt:
            self.node.on_replay()

    def announced(self, op: Op | None, local: bool) -> None:
        """This instance's own op goes to the others once its members have it."""
        if local:
            self.node.send(op)

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
