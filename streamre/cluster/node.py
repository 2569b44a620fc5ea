"""One instance's part in a cluster, as plain state: its origin, the ops it numbers, what it
holds (heads), who else is online, and whether it is the one that publishes rooms' graphs on
the integrators' topics.

Every instance merges every room of the cluster. Integrators' graph topics
(`streamre/v1/{room}/graph/...`) promise one version sequence per room, so only the *lead*,
the online instance with the lowest origin, publishes them; an instance that becomes lead
first moves each room's version past the last one published (`version_floor`), so
subscribers take its snapshot as newer. Triplets and transcript lines are published by the
instance that heard them.
"""

from __future__ import annotations

import time
from typing import Callable

from streamre.cluster.heads import HeadMap, Heads
from streamre.graph.ops import Op, change_op
from streamre.graph.entries import Change, Mention
from streamre.triplets import Triplet


class ClusterNode:
    """Args:
        name: the cluster's name (`--cluster`).
        origin: this instance's origin (server id and a tag kept in its data dir).
        idle_s: a room with no op for this long leaves the published heads.
        clock: wall-clock seconds (tests pass their own).
    """

    def __init__(self, name: str, origin: str, idle_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.name, self.origin, self.idle_s = name, origin, idle_s
        self.clock = clock
        self.heads = Heads()
        self.online: dict[str, HeadMap] = {}  # other members that say they are online
        self.published: dict[str, int] = {}  # room -> last version on its retained snapshot
        self.send: Callable[[Op], None] = lambda op: None  # to the other instances (the link)
        self.on_replay: Callable[[], None] = lambda: None  # a room replayed in order
        self.bad_ops = 0

    def make_op(self, room: str, mention: Mention, triplets: list[Triplet], at: float,
                began: float, start: float | None, end: float | None) -> Op:
        """An op of this origin: the next seq in `room`, keyed by the wall clock now."""
        return Op(room, self.origin, self.heads.next_seq(room, self.origin), self.clock(),
                  mention.session_id, mention.segment_id, mention.speaker, mention.source,
                  mention.continues_previous, start, end, began, at, mention.text,
                  tuple(triplets), voice=mention.voice)

    def make_change_op(self, room: str, change: Change) -> Op:
        """The op of a person's change (a correction, a merge, a voice's name) made here: the
        next seq in `room`."""
        return change_op(room, self.origin, self.heads.next_seq(room, self.origin),
                         self.clock(), change)

    def held(self, op: Op) -> None:
        """`op` is journaled here."""
        self.heads.add(op.room, op.origin, op.seq, self.clock())

    def my_heads(self) -> HeadMap:
        return self.heads.active(self.clock(), self.idle_s)

    @property
    def lead(self) -> bool:
        return all(self.origin < other for other in self.online)

    def version_floor(self, room: str) -> int:
        """The version this instance's next publication of `room` must exceed."""
        return self.published.get(room, -1)
