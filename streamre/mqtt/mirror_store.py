"""An MQTT subscriber's mirrored rooms on disk: the graph as announced, one transaction per
snapshot or delta, and every transcript line (once, however often it is delivered), in the
same SQLite file a server's journal uses (`mirror_*` tables), so `streamre graph export`
reads either."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from streamre.graph.transcript import Said
from streamre.mqtt.mirror import Change, MirroredRoom
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

    def save(self, change: Change) -> None:
        """Upsert a snapshot's or delta's nodes and edges, after deleting what the delta
        removed; a snapshot (`replace`) first clears the room."""
        room, nodes, edges = change.room, change.nodes, change.edges
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if change.replace:
                self._db.execute("DELETE FROM mirror_nodes WHERE room = ?", (room,))
                self._db.execute("DELETE FROM mirror_edges WHERE room = ?", (room,))
            self._db.executemany("DELETE FROM mirror_edges WHERE room = ? AND id = ?",
                                 [(room, e) for e in change.removed_edges])
            self._db.executemany("DELETE FROM mirror_nodes WHERE room = ? AND id = ?",
                                 [(room, n) for n in change.removed_nodes])
            self._db.executemany("INSERT OR REPLACE INTO mirror_nodes VALUES (?, ?, ?)",
                                 [(room, n["id"], json.dumps(n)) for n in nodes])
            self._db.executemany("INSERT OR REPLACE INTO mirror_edges VALUES (?, ?, ?)",
                                 [(room, e["id"], json.dumps(e)) for e in edges])
            self._db.execute("INSERT OR REPLACE INTO mirror_rooms VALUES (?, ?)",
                             (room, change.version))

    def save_said(self, room: str, said: Said) -> bool:
        """Keep a transcript line, or its new version (corrected, or stating other edges
        after a merge); False if it was kept as it is already (a QoS 1 redelivery). A line
        sent before its correction never undoes it."""
        data = json.dumps(said.to_json())
        with self._lock, self._db:
            kept = self._db.execute(
                "SELECT data FROM mirror_segments WHERE room = ? AND session_id = ? AND "
                "segment_id = ?", (room, said.session_id, said.segment_id)).fetchone()
            if kept is not None and (kept[0] == data or (
                    said.heard is None and "heard" in json.loads(kept[0]))):
                return False
            self._db.execute("INSERT OR REPLACE INTO mirror_segments VALUES (?, ?, ?, ?)",
                             (room, said.session_id, said.segment_id, data))
            return True

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
