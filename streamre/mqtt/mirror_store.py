"""An MQTT subscriber's mirrored rooms on disk: the graph as announced, one transaction per
snapshot or delta, and every transcript line (once, however often it is delivered), in the
same SQLite file a server's journal uses (`mirror_*` tables), so `streamre graph export`
reads either."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from streamre.graph.transcript import Said
from streamre.mqtt.mirror import MirroredRoom
from streamre.storage import open_sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS mirror_rooms (room TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mirror_nodes (
    room TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (room, id));
CREATE TABLE IF NOT EXISTS mirror_edges (
    room TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (room, id));
CREATE TABLE IF NOT EXISTS mirror_segments (
    room TEXT NOT NULL, session_id TEXT NOT NULL, segment_id INTEGER NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (room, session_id, segment_id));
"""


class MirrorStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = open_sqlite(self.path, SCHEMA, "FULL")
        self._lock = threading.Lock()

    def save(self, room: str, version: int, nodes: list[dict], edges: list[dict],
             replace: bool) -> None:
        """Upsert a snapshot's or delta's nodes and edges; `replace` (a snapshot) first clears
        the room."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if replace:
                self._db.execute("DELETE FROM mirror_nodes WHERE room = ?", (room,))
                self._db.execute("DELETE FROM mirror_edges WHERE room = ?", (room,))
            self._db.executemany("INSERT OR REPLACE INTO mirror_nodes VALUES (?, ?, ?)",
                                 [(room, n["id"], json.dumps(n)) for n in nodes])
            self._db.executemany("INSERT OR REPLACE INTO mirror_edges VALUES (?, ?, ?)",
                                 [(room, e["id"], json.dumps(e)) for e in edges])
            self._db.execute("INSERT OR REPLACE INTO mirror_rooms VALUES (?, ?)", (room, version))

    def save_said(self, room: str, said: Said) -> bool:
        """Keep a transcript line; False if it was kept already (a QoS 1 redelivery)."""
        with self._lock:
            return self._db.execute(
                "INSERT OR IGNORE INTO mirror_segments VALUES (?, ?, ?, ?)",
                (room, said.session_id, said.segment_id, json.dumps(said.to_json()))
            ).rowcount == 1

    def transcript(self, room: str) -> list[Said]:
        """The room's lines as received, in the order they were said."""
        lines = [Said.from_json(json.loads(d)) for (d,) in self._db.execute(
            "SELECT data FROM mirror_segments WHERE room = ? ORDER BY rowid", (room,))]
        return sorted(lines, key=lambda s: s.time)

    def rooms(self) -> list[str]:
        return [r for (r,) in self._db.execute(
            "SELECT room FROM mirror_rooms UNION SELECT room FROM mirror_segments ORDER BY room")]

    def load(self, room: str) -> MirroredRoom:
        row = self._db.execute("SELECT version FROM mirror_rooms WHERE room = ?",
                               (room,)).fetchone()
        if row is None:  # only transcript lines so far
            return MirroredRoom(room)
        (version,) = row
        nodes = {i: json.loads(d) for i, d in self._db.execute(
            "SELECT id, data FROM mirror_nodes WHERE room = ?", (room,))}
        edges = {i: json.loads(d) for i, d in self._db.execute(
            "SELECT id, data FROM mirror_edges WHERE room = ?", (room,))}
        return MirroredRoom(room, version, nodes, edges, synced=True)

    def close(self) -> None:
        self._db.close()
