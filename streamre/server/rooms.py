"""The server's rooms: each a graph, its journal and the outboxes of everyone in it.

A room is also where facts leave the process: the MQTT publisher is fed here and nowhere else,
with each segment's `triplets` answer and each graph delta.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator

from streamre.graph import GraphSettings, Mention, RoomGraph
from streamre.graph.store import GraphStore
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

    def apply(self, triplets: list[Triplet], mention: Mention, at: float) -> None:
        """Journal, apply and announce facts heard at meeting time `at` (Unix seconds)."""
        if not triplets:
            return
        self.store.append(self.name, triplets, mention, at)  # durable before announced
        refused = self.graph.refused
        delta = self.graph.apply(triplets, mention, at)
        if self.graph.refused > refused:
            self.on_refused(self.graph.refused - refused)
        if delta is None:
            return
        message = delta.to_message()
        text = json.dumps(message)  # serialised once for every member
        for outbox in list(self.members):
            outbox.send_graph_delta(delta.version, text)
        if self.publisher is not None:  # after the viewers have it
            self.publisher.publish_delta(self.name, message)

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


class Rooms:
    """Every room by name, opened on first use and restored from the store at start.

    Args:
        store: the graph journal every room writes to.
        settings: the dedup and size settings of every room's graph.
        publisher: where facts go over MQTT, if anywhere.
        on_refused: called with (room, graph, count) when a room's caps refuse facts.
    """

    def __init__(self, store: GraphStore, settings: GraphSettings,
                 publisher: MqttPublisher | None = None,
                 on_refused: Callable[[str, RoomGraph, int], None] = lambda *a: None) -> None:
        self.store, self.settings, self.publisher = store, settings, publisher
        self._on_refused = on_refused
        self._rooms: dict[str, Room] = {}

    def restore(self) -> list[str]:
        """Every journaled room as it was, ids and version included; their names."""
        for name in self.store.rooms():
            self._rooms[name] = self._room(name, self.store.load(name, self.settings))
        return list(self._rooms)

    def open(self, name: str) -> Room:
        if name not in self._rooms:
            self._rooms[name] = self._room(name, RoomGraph(name, self.settings))
        return self._rooms[name]

    def get(self, name: str) -> Room | None:
        return self._rooms.get(name)

    def __iter__(self) -> Iterator[Room]:
        return iter(sorted(self._rooms.values(), key=lambda r: r.name))

    def __len__(self) -> int:
        return len(self._rooms)

    def _room(self, name: str, graph: RoomGraph) -> Room:
        return Room(name, graph, self.store, self.publisher,
                    lambda count: self._on_refused(name, graph, count))
