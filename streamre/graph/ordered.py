"""The merge core: a room's graph as a function of the *set* of its ops.

A `RoomGraph` depends on the order facts reach it: which name a fuzzy spelling joins, which
sightings the dedup window folds into one mention, which sentences are the latest evidence.
So instances that merely applied ops as they arrived would drift apart. Here the graph is
always the replay of every op held, in the total order (key, origin, seq): an op that sorts
after all the others (nearly always: ops travel in milliseconds) is applied as it comes; one
that sorts earlier rewinds to the latest checkpoint before its place and replays from there.
Duplicates do nothing. Instances holding the same ops therefore hold the same graph, edge
ids, mention counts, confidences and evidence alike, whatever order the ops came in.

Versions stay per instance: a replay is announced as one snapshot at the next version.
Plain and synchronous, no I/O.
"""

from __future__ import annotations

import bisect
import pickle
from dataclasses import dataclass
from typing import Callable

from streamre.graph.ops import Op
from streamre.graph.room import GraphDelta, RoomGraph
from streamre.graph.settings import GraphSettings

CHECKPOINT_EVERY = 32  # ops between copies of the graph kept for rewinding
CHECKPOINTS_KEPT = 16  # the latest ones; an op older than all of them replays from the start


@dataclass
class Merged:
    """What merging one op changed: a `delta` to announce, or `rebuilt` (announce a
    snapshot), and the ids of the edges the op stated."""
    delta: GraphDelta | None
    rebuilt: bool
    stated: list[str]


class OrderedGraph:
    """Args:
        room, settings: the room's name and graph settings.
        checkpoint_every, checkpoints_kept: copies kept for rewinding. Only the ops since the
            oldest kept copy stay in memory (the room is compacted as it grows).
        journal: every op journaled for the room, in the total order: what an op older than
            anything in memory (a long outage's, caught up) is replayed with.
    """

    def __init__(self, room: str, settings: GraphSettings,
                 checkpoint_every: int = CHECKPOINT_EVERY,
                 checkpoints_kept: int = CHECKPOINTS_KEPT,
                 journal: Callable[[], list[Op]] = list) -> None:
        self.room, self.settings = room, settings
        self._every, self._kept, self._journal = checkpoint_every, checkpoints_kept, journal
        self.rewinds = self.replays = 0
        self._quiet_until = 0  # no checkpoint at or below this many ops (`extend`)
        self._reset()

    def _reset(self) -> None:
        self.graph = RoomGraph(self.room, self.settings)
        self._ops: list[Op] = []  # in the total order, after the `_dropped` first ones
        self._orders: list[tuple] = []
        self._ids: set[tuple[str, int]] = set()  # of the ops in memory
        self._dropped, self._dropped_last = 0, None  # how many compacted; the last's order
        # (ops applied, the graph then, pickled: a fifth of a deep copy's time, and compact)
        self._checkpoints: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        return self._dropped + len(self._ops)

    def merge(self, op: Op) -> Merged | None:
        """Take `op` into the room; None if it was already there."""
        if op.room != self.room:
            raise ValueError(f"op of room {op.room!r} merged into {self.room!r}")
        if op.id in self._ids:
            return None
        if self._dropped_last is not None and op.order <= self._dropped_last:
            return self._replay_all(op)
        place = bisect.bisect(self._orders, op.order)
        self._ids.add(op.id)
        self._ops.insert(place, op)
        self._orders.insert(place, op.order)
        if place == len(self._ops) - 1:
            delta, stated = self._apply(op)
            self._keep_checkpoint(len(self))
            return Merged(delta, False, stated)
        return Merged(None, True, self._rewind(self._dropped + place))

    def _apply(self, op: Op) -> tuple[GraphDelta | None, list[str]]:
        if op.change is not None:  # a correction waits for its line's op, wherever it sorts
            return self.graph.change(op.change, wait=True), []
        return self.graph.apply_stating(op.triplets, op.mention(), op.at)

    def _keep_checkpoint(self, applied: int) -> None:
        if applied % self._every == 0 and applied > self._quiet_until:
            self._checkpoints.append((applied, _frozen(self.graph)))
            self._trim()

    def _trim(self) -> None:
        """Keep the latest checkpoints, and forget the ops before the oldest of them: no
        rewind goes back past it."""
        if len(self._checkpoints) < self._kept:
            return
        del self._checkpoints[:-self._kept]
        gone = self._checkpoints[0][0] - self._dropped
        if gone > 0:
            self._ids.difference_update(op.id for op in self._ops[:gone])
            self._dropped, self._dropped_last = self._dropped + gone, self._orders[gone - 1]
            del self._ops[:gone], self._orders[:gone]

    def _rewind(self, place: int) -> list[str]:
        """Replay from the latest checkpoint at or before absolute `place`; the stated
        edges of the op there."""
        self.rewinds += 1
        version = self.graph.version
        while self._checkpoints and self._checkpoints[-1][0] > place:
            self._checkpoints.pop()
        if self._checkpoints:
            start, kept = self._checkpoints[-1]
            self.graph = pickle.loads(kept)
        else:
            start, self.graph = self._dropped, RoomGraph(self.room, self.settings)
        stated: list[str] = []
        for index in range(start, len(self)):
            _, edges = self._apply(self._ops[index - self._dropped])
            if index == place:
                stated = edges
            if (index + 1) % self._every == 0:
                self._checkpoints.append((index + 1, _frozen(self.graph)))
        self._trim()
        self.graph.version = version + 1  # announced as one snapshot
        return stated

    def _replay_all(self, op: Op) -> Merged | None:
        """An op older than what memory holds: the room replayed whole, from the journal."""
        journaled = self._journal()
        if any(o.id == op.id for o in journaled):
            return None
        self.replays += 1
        version = self.graph.version
        ops = sorted([*journaled, op], key=lambda o: o.order)
        self._reset()
        stated = self.extend(ops, until=op)
        self.graph.version = version + 1
        return Merged(None, True, stated)

    def extend(self, ops: list[Op], until: Op | None = None) -> list[str]:
        """Merge `ops`, given in the total order (a room loading from its journal); the
        edges that `until` stated. Only the checkpoints that will be kept are copied."""
        stated: list[str] = []
        self._quiet_until = len(self) + len(ops) - self._every * self._kept
        try:
            for op in ops:
                merged = self.merge(op)
                if op is until and merged is not None:
                    stated = merged.stated
        finally:
            self._quiet_until = 0
        return stated


def _frozen(graph: RoomGraph) -> bytes:
    """A checkpoint: this process's own graph, pickled (never read from anywhere else)."""
    return pickle.dumps(graph, protocol=pickle.HIGHEST_PROTOCOL)
