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
import copy
from dataclasses import dataclass

from streamre.cluster.ops import Op
from streamre.graph.room import GraphDelta, GraphSettings, RoomGraph

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
    def __init__(self, room: str, settings: GraphSettings,
                 checkpoint_every: int = CHECKPOINT_EVERY,
                 checkpoints_kept: int = CHECKPOINTS_KEPT) -> None:
        self.room, self.settings = room, settings
        self.graph = RoomGraph(room, settings)
        self._every, self._kept = checkpoint_every, checkpoints_kept
        self._ops: list[Op] = []  # in the total order
        self._orders: list[tuple] = []
        self._ids: set[tuple[str, int]] = set()
        self._checkpoints: list[tuple[int, RoomGraph]] = []  # (ops applied, a copy)
        self.rewinds = 0

    def __len__(self) -> int:
        return len(self._ops)

    def __contains__(self, op_id: tuple[str, int]) -> bool:
        return op_id in self._ids

    @property
    def last_order(self) -> tuple | None:
        return self._orders[-1] if self._orders else None

    def merge(self, op: Op) -> Merged | None:
        """Take `op` into the room; None if it was already there."""
        if op.room != self.room:
            raise ValueError(f"op of room {op.room!r} merged into {self.room!r}")
        if op.id in self._ids:
            return None
        place = bisect.bisect(self._orders, op.order)
        self._ids.add(op.id)
        self._ops.insert(place, op)
        self._orders.insert(place, op.order)
        if place == len(self._ops) - 1:
            delta, stated = self._apply(op)
            self._keep_checkpoint()
            return Merged(delta, False, stated)
        return Merged(None, True, self._rewind(place, op))

    def _apply(self, op: Op) -> tuple[GraphDelta | None, list[str]]:
        if not op.triplets:  # a segment with no facts leaves the graph as it is
            return None, []
        return self.graph.apply_stating(op.triplets, op.mention(), op.at)

    def _keep_checkpoint(self) -> None:
        if len(self._ops) % self._every == 0:
            self._checkpoints.append((len(self._ops), copy.deepcopy(self.graph)))
            del self._checkpoints[:-self._kept]

    def _rewind(self, place: int, op: Op) -> list[str]:
        """Replay from the latest checkpoint at or before `place`; the stated edges of `op`."""
        self.rewinds += 1
        version = self.graph.version
        while self._checkpoints and self._checkpoints[-1][0] > place:
            self._checkpoints.pop()
        if self._checkpoints:
            start, kept = self._checkpoints[-1]
            self.graph = copy.deepcopy(kept)
        else:
            start, self.graph = 0, RoomGraph(self.room, self.settings)
        stated: list[str] = []
        for index in range(start, len(self._ops)):
            _, edges = self._apply(self._ops[index])
            if index == place:
                stated = edges
            if (index + 1) % self._every == 0:
                self._checkpoints.append((index + 1, copy.deepcopy(self.graph)))
        del self._checkpoints[:-self._kept]
        self.graph.version = version + 1  # announced as one snapshot
        return stated

    def ops(self) -> list[Op]:
        """Every op held, in the total order."""
        return list(self._ops)
