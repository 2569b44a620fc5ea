"""The server's rooms by name: which are in memory, which rest in the journal, and (in a
cluster) where the other instances' ops go."""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterator

from streamre.cluster.node import ClusterNode
from streamre.graph import GraphSettings, RoomGraph
from streamre.graph.ops import Op
from streamre.graph.store import GraphStore
from streamre.hearing.names import Learnt, MeetingNames
from streamre.mqtt.publisher import MqttPublisher
from streamre.server.outbox import Outbox
from streamre.server.room import Room, load_facts

log = logging.getLogger("streamre.server")


class TooManyRooms(Exception):
    """Every room in memory has a client in it, and `max_rooms` are."""


class Rooms:
    """Every room by name: at most `max_rooms` in memory, the rest resting in the store.

    A room opens when a client enters it. When the last client leaves, it starts to idle: with
    no facts it is forgotten after `idle_s`; with facts it stays until its place is needed, then
    rests in the journal and loads again when someone enters or asks for it. Entering a new
    room when every room in memory has a client raises `TooManyRooms`.

    Args:
        store: the graph journal every room writes to.
        settings: the dedup and size settings of every room's graph.
        publisher: where facts go over MQTT, if anywhere.
        on_refused: called with the count when a room's caps refuse facts (a metric); the
            first refusal of each room, then one in 1000, is logged here.
        max_rooms: rooms held in memory at most.
        idle_s: how long a room with no clients and no facts is kept.
        clock: monotonic seconds (tests pass their own).
        node: this instance in its cluster (`serve --cluster`), if in one: then its rooms are
            ops, and `merge` takes the other instances'.
    """

    def __init__(self, store: GraphStore, settings: GraphSettings,
                 publisher: MqttPublisher | None = None,
                 on_refused: Callable[[int], None] = lambda count: None,
                 max_rooms: int = 1000, idle_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 node: ClusterNode | None = None) -> None:
        self.store, self.settings, self.publisher, self.node = store, settings, publisher, node
        self.max_rooms, self.idle_s, self._clock = max_rooms, idle_s, clock
        self._on_refused = on_refused
        self._rooms: dict[str, Room] = {}  # in memory
        self._resting: dict[str, dict] = {}  # journaled rooms not in memory: their summaries

    def restore(self) -> list[str]:
        """Every journaled room as it was (ids and version included), as many as fit in memory;
        the names of all of them."""
        for name in self.store.rooms():
            room = self._room(name)
            if len(self._rooms) < self.max_rooms:
                self._rooms[name] = room
            else:
                self._resting[name] = room.summary()
        return [*self._rooms, *self._resting]

    def can_enter(self, name: str) -> bool:
        """Whether `enter(name, …)` would succeed now."""
        return name in self._rooms or len(self._rooms) < self.max_rooms or \
            any(not r.members for r in self._rooms.values())

    def open(self, name: str) -> Room:
        """Room `name` in memory: as it is, loaded from the journal, or new."""
        room = self._rooms.get(name)
        if room is None:
            self._make_space()
            room = self._rooms[name] = self._room(name)
            self._resting.pop(name, None)
        return room

    def enter(self, name: str, member: Outbox) -> Room:
        """`member` joins room `name`, opened if it is not in memory."""
        room = self.open(name)
        room.members.add(member)
        return room

    def leave(self, room: Room, member: Outbox) -> None:
        room.members.discard(member)
        if not room.members:
            room.idle_since = self._clock()

    def graph(self, name: str) -> RoomGraph | None:
        """A room's graph: from memory, or rebuilt from the journal (and not kept); None for
        a room that is neither."""
        room = self._rooms.get(name)
        if room is not None:
            return room.graph
        return self.store.load(name, self.settings) if self.store.has_room(name) else None

    def has_room(self, name: str) -> bool:
        """Whether room `name` is in memory or in the journal."""
        return name in self._rooms or self.store.has_room(name)

    def vocabulary(self, name: str) -> tuple[str, ...]:
        """A room's own vocabulary, in memory or journaled (none for a room never given one)."""
        room = self._rooms.get(name)
        return room.vocabulary if room is not None else self.store.names.vocabulary(name)

    def set_vocabulary(self, name: str, phrases: list[str]) -> tuple[str, ...]:
        """Replace a room's vocabulary (opening the room); raises `BadVocabulary` or
        `TooManyRooms`."""
        return self.open(name).set_vocabulary(phrases)

    def context(self, name: str) -> tuple[str, tuple[str, ...]]:
        """A room's context and the names found in it, in memory or journaled."""
        room = self._rooms.get(name)
        if room is not None:
            return room.names.context, room.names.context_names
        return self.store.names.context(name)

    def learnt(self, name: str) -> tuple[Learnt, ...]:
        """What a room learnt from corrections and merges, in memory or journaled."""
        room = self._rooms.get(name)
        if room is not None:
            return room.names.learnt
        return tuple(Learnt(heard, meant) for heard, meant in self.store.names.learnt(name))

    def expected(self, name: str) -> list:
        """Every name a room expects, most trusted first (`Room.expected`); a room resting
        in the journal is read from it, not kept."""
        if not self.has_room(name):
            return []
        return (self._rooms.get(name) or self._room(name)).expected()

    def evict_idle(self) -> list[str]:
        """Forget the rooms with no clients, no facts and no vocabulary that have idled
        `idle_s`; their names."""
        now = self._clock()
        gone = [name for name, room in self._rooms.items()
                if not room.members and now - room.idle_since >= self.idle_s
                and not self.store.has_room(name)]
        for name in gone:
            del self._rooms[name]
        return gone

    def names(self) -> list[str]:
        """Every room, in memory or resting."""
        return sorted({*self._rooms, *self._resting})

    def snapshot_to_publish(self, name: str) -> dict:
        """A room's snapshot for the integrators' retained topic; in a cluster, at a version
        past any another lead published (the room opened to keep it)."""
        if self.node is None:
            return self.graph(name).snapshot()
        try:
            room = self.open(name)
        except TooManyRooms:
            graph = self.graph(name)
            graph.version = max(graph.version, self.node.version_floor(name) + 1)
            return graph.snapshot()
        room.claim_version()
        return room.graph.snapshot()

    def summaries(self) -> list[dict]:
        """Every room, in memory or resting, by name."""
        found = {**self._resting, **{name: r.summary() for name, r in self._rooms.items()}}
        return [found[name] for name in sorted(found)]

    def __iter__(self) -> Iterator[Room]:
        """The rooms in memory."""
        return iter(list(self._rooms.values()))

    def __len__(self) -> int:
        return len(self._rooms)

    def _make_space(self) -> None:
        """Below `max_rooms` in memory: the room idle longest goes (to rest, if it has facts)."""
        if len(self._rooms) < self.max_rooms:
            return
        idle = [r for r in self._rooms.values() if not r.members]
        if not idle:
            raise TooManyRooms(f"all {self.max_rooms} rooms the server holds have clients")
        room = min(idle, key=lambda r: r.idle_since)
        del self._rooms[room.name]
        if self.store.has_room(room.name):
            self._resting[room.name] = room.summary()

    def merge(self, op: Op) -> bool:
        """Another instance's op (or a copy of one of ours): merged into its room, opened if
        need be; False if it was already here. With every room in memory busy, it is only
        journaled, and merged when the room next loads."""
        try:
            return self.open(op.room).merge(op) is not None
        except TooManyRooms:
            if self.store.has_op(op):
                return False
            if op.change is not None:  # the lines it restates are left as they were
                self.store.change(op.room, op.change, time.time(), {}, op,
                                  self.store.op_version(op.room))
                self.node.held(op)
                return True
            self.store.record(op.room, op.said([], op.speaker), list(op.triplets), op.mention(), op.at,
                              time.time(), op, self.store.op_version(op.room))
            self.node.held(op)
            return True

    def _room(self, name: str) -> Room:
        """Room `name` as the journal has it (or new)."""
        kept = self.store.names
        context, context_names = kept.context(name)
        names = MeetingNames(kept.vocabulary(name), context, context_names, kept.chat_names(name),
                             self.store.transcript.speakers(name),
                             self.learnt(name))
        room = Room(name, load_facts(self.store, name, self.settings, self.node), self.store,
                    self.publisher, idle_since=self._clock(), names=names)
        room.on_refused = lambda count: self._refused(room, count)
        return room

    def _refused(self, room: Room, count: int) -> None:
        self._on_refused(count)
        refused = room.graph.refused
        if refused == count or refused % 1000 < count:  # the first, then one in 1000
            log.warning("room %s is full (max_nodes=%d, max_edges=%d): %d new fact(s) "
                        "refused so far", room.name, self.settings.max_nodes,
                        self.settings.max_edges, refused)
