"""The server's rooms: each a graph, its journal and the outboxes of everyone in it.

A room is also where facts leave the process: the MQTT publisher is fed here and nowhere else,
with each segment's `triplets` answer, its transcript line and each graph delta.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from streamre.graph import GraphSettings, Mention, RoomGraph
from streamre.graph.store import GraphStore
from streamre.graph.transcript import Said
from streamre.hearing.vocabulary import check_vocabulary, merged
from streamre.mqtt.publisher import MqttPublisher
from streamre.server.outbox import Outbox
from streamre.triplets import Triplet

log = logging.getLogger("streamre.server")


@dataclass
class Room:
    """A room's graph, its journal, and the outboxes of everyone in it (producers, viewers)."""
    name: str
    graph: RoomGraph
    store: GraphStore
    publisher: MqttPublisher | None = None
    on_refused: Callable[[int], None] = lambda n: None  # facts refused by the room's caps
    members: set[Outbox] = field(default_factory=set)
    idle_since: float = 0.0  # when its last member left (or it opened), on the rooms' clock
    vocabulary: tuple[str, ...] = ()  # the phrases its people gave (start, PUT), journaled

    def set_vocabulary(self, phrases: list[str], add: bool = False) -> tuple[str, ...]:
        """Replace the room's vocabulary (or `add` to it), kept in the journal; raises
        `BadVocabulary` past the bounds, the old one kept."""
        phrases = check_vocabulary([*self.vocabulary, *phrases] if add else phrases)
        self.store.save_vocabulary(self.name, phrases)
        self.vocabulary = phrases
        return phrases

    def hearing_vocabulary(self) -> tuple[str, ...]:
        """What its segments are heard with (beside `serve --vocabulary`): its own phrases,
        then the names its graph learnt, the most recent first (a name heard right once is
        spelled the same later), at most `MAX_PHRASES`."""
        return merged(self.vocabulary, self.graph.labels())

    def record(self, mention: Mention, triplets: list[Triplet], at: float, began: float,
               start: float | None = None, end: float | None = None) -> Said:
        """One segment (or typed sentence) and its facts: applied to the graph, journaled in
        one transaction, then announced (graph delta, transcript line). `at` is the meeting
        time of its facts, `began` the meeting time it began (Unix seconds); `start` and `end`
        are seconds of its stream."""
        refused = self.graph.refused
        # No facts, no call: the graph is exactly what replaying its facts rebuilds.
        delta, stated = self.graph.apply_stating(triplets, mention, at) if triplets \
            else (None, [])
        said = Said(mention.session_id, mention.segment_id, mention.speaker, mention.source,
                    start, end, began, mention.text, tuple(stated))
        try:  # durable before announced
            _, seq = self.store.record(self.name, said, triplets, mention, at, time.time())
        except Exception:
            # Not journaled, so never applied: the graph is the journal's again.
            self.graph = self.store.load(self.name, self.graph.settings)
            raise
        if self.graph.refused > refused:
            self.on_refused(self.graph.refused - refused)
        if delta is not None:
            message = delta.to_message()
            text = json.dumps(message)  # serialised once for every member
            for outbox in list(self.members):
                outbox.send_graph_delta(delta.version, text)
            if self.publisher is not None:  # after the viewers have it
                self.publisher.publish_delta(self.name, message)
        line = said.message()
        text = json.dumps(line)
        for outbox in list(self.members):
            outbox.send_transcript(seq, text)  # to those who follow the transcript
        if self.publisher is not None:
            self.publisher.publish_transcript(self.name, {**line, "room": self.name})
        return said

    def transcript_after(self, seq: int, limit: int) -> list[tuple[int, str]]:
        """The journaled transcript after sequence number `seq`, as `transcript` messages."""
        return [(n, json.dumps(said.message()))
                for n, said in self.store.transcript(self.name, seq, limit)]

    def report(self, session_id: str, answer: dict) -> None:
        """A producer's `triplets` answer, for integrators (MQTT); failed answers stay local."""
        if self.publisher is not None and "error" not in answer:
            self.publisher.publish_triplets(self.name, {
                **answer, "session_id": session_id, "room": self.name,
                "message_id": f"{session_id}/{answer['segment_id']}"})

    def summary(self) -> dict:
        return {"room": self.name, "nodes": self.graph.node_count, "edges": self.graph.edge_count,
                "version": self.graph.version, "clients": len(self.members),
                "refused_facts": self.graph.refused}


def record_counted(room: Room, metrics, mention: Mention, triplets: list[Triplet], at: float,
                   began: float, start: float | None = None, end: float | None = None
                   ) -> dict | None:
    """`room.record`, counted in `metrics` (the server's `Metrics`); None once journaled, or
    the error fields of the `triplets` answer when the journal refused it (a full disk)."""
    try:
        room.record(mention, triplets, at, began, start, end)
    except Exception as e:
        log.exception("could not journal %s", mention.segment_ref)
        metrics.errors.labels("journal_failed").inc()
        return dict(triplets=[], error="journal_failed", message=str(e))
    metrics.triplets.inc(len(triplets))
    return None


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
    """

    def __init__(self, store: GraphStore, settings: GraphSettings,
                 publisher: MqttPublisher | None = None,
                 on_refused: Callable[[int], None] = lambda count: None,
                 max_rooms: int = 1000, idle_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.settings, self.publisher = store, settings, publisher
        self.max_rooms, self.idle_s, self._clock = max_rooms, idle_s, clock
        self._on_refused = on_refused
        self._rooms: dict[str, Room] = {}  # in memory
        self._resting: dict[str, dict] = {}  # journaled rooms not in memory: their summaries

    def restore(self) -> list[str]:
        """Every journaled room as it was (ids and version included), as many as fit in memory;
        the names of all of them."""
        for name in self.store.rooms():
            room = self._room(name, self.store.load(name, self.settings))
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
            journaled = self.store.has_room(name)
            graph = self.store.load(name, self.settings) if journaled else RoomGraph(
                name, self.settings)
            room = self._rooms[name] = self._room(name, graph)
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
        return room.vocabulary if room is not None else self.store.vocabulary(name)

    def set_vocabulary(self, name: str, phrases: list[str]) -> tuple[str, ...]:
        """Replace a room's vocabulary (opening the room); raises `BadVocabulary` or
        `TooManyRooms`."""
        return self.open(name).set_vocabulary(phrases)

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

    def _room(self, name: str, graph: RoomGraph) -> Room:
        room = Room(name, graph, self.store, self.publisher, idle_since=self._clock(),
                    vocabulary=self.store.vocabulary(name))
        room.on_refused = lambda count: self._refused(room, count)
        return room

    def _refused(self, room: Room, count: int) -> None:
        self._on_refused(count)
        refused = room.graph.refused
        if refused == count or refused % 1000 < count:  # the first, then one in 1000
            log.warning("room %s is full (max_nodes=%d, max_edges=%d): %d new fact(s) "
                        "refused so far", room.name, self.settings.max_nodes,
                        self.settings.max_edges, refused)
