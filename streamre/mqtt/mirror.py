"""The subscriber's core: room graphs rebuilt from snapshots and deltas, as plain data.

A room is in sync after a snapshot; then each delta must be exactly the next version. A delta at
or below the current version was already applied (a QoS 1 redelivery, a replayed outbox) and is
ignored; one past the next version means something was missed, so the room waits for the next
snapshot (the publisher re-sends them every few seconds and after every reconnect). A snapshot
older than the room is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamre.room_name import valid_room


@dataclass
class MirroredRoom:
    room: str
    version: int = -1
    nodes: dict[str, dict] = field(default_factory=dict)
    edges: dict[str, dict] = field(default_factory=dict)
    synced: bool = False

    def to_json(self) -> dict:
        return {"room": self.room, "version": self.version, "directed": True, "multigraph": True,
                "nodes": sorted(self.nodes.values(), key=lambda n: n["id"]),
                "edges": sorted(self.edges.values(), key=lambda e: e["id"])}


@dataclass(frozen=True)
class Change:
    """What to persist after a message: `replace` for a snapshot, else the upserts and the
    ids removed (a correction's or merge's delta)."""
    room: str
    version: int
    nodes: list[dict]
    edges: list[dict]
    replace: bool
    removed_edges: tuple[str, ...] = ()
    removed_nodes: tuple[str, ...] = ()


class GraphMirror:
    def __init__(self) -> None:
        self.rooms: dict[str, MirroredRoom] = {}
        self.duplicates = 0
        self.gaps = 0

    def restore(self, room: MirroredRoom) -> None:
        """A room as persisted; it goes on from its version."""
        room.synced = room.version >= 0
        self.rooms[room.room] = room

    def apply(self, message: dict) -> Change | None:
        if not isinstance(message, dict) or message.get("type") != "graph" or \
                not valid_room(message.get("room")) or \
                not isinstance(message.get("version"), int):
            raise ValueError("not a graph message of a validly named room")
        room = self.rooms.setdefault(message["room"], MirroredRoom(message["room"]))
        version, nodes, edges = message["version"], message.get("nodes", []), message.get("edges", [])
        if message.get("op") == "snapshot":
            if version < room.version or (version == room.version and room.synced):
                self.duplicates += 1
                return None
            room.nodes = {n["id"]: n for n in nodes}
            room.edges = {e["id"]: e for e in edges}
            room.version, room.synced = version, True
            return Change(room.room, version, nodes, edges, replace=True)
        if message.get("op") != "delta":
            raise ValueError("graph op must be snapshot or delta")
        if version <= room.version:
            self.duplicates += 1
            return None
        if not room.synced or version != room.version + 1:
            if room.synced:
                self.gaps += 1
            room.synced = False  # wait for the next snapshot
            return None
        removed_edges = tuple(message.get("removed_edges") or ())
        removed_nodes = tuple(message.get("removed_nodes") or ())
        for edge in removed_edges:
            room.edges.pop(edge, None)
        for node in removed_nodes:
            room.nodes.pop(node, None)
        room.nodes.update({n["id"]: n for n in nodes})
        room.edges.update({e["id"]: e for e in edges})
        room.version = version
        return Change(room.room, version, nodes, edges, False, removed_edges, removed_nodes)
