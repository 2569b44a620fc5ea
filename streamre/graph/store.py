"""Persistence: every batch of facts a room takes in is journaled in SQLite before it is applied
and announced; replaying the journal rebuilds each room exactly (ids, mentions, version).

The same file format keeps an MQTT subscriber's mirrored rooms (`mirror_*` tables): the graph
as announced, updated in one transaction per snapshot or delta.

One file (`streamre.db` in the data dir), WAL mode, `synchronous=FULL`, one transaction per
batch: a process killed at any moment leaves either the whole batch or none of it, and nothing
that was announced is lost. The graph settings the journal was written with are kept beside
it, so `streamre graph export` replays with the same ones.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from streamre.graph.room import GraphSettings, Mention, RoomGraph
from streamre.triplets import Triplet

DB_NAME = "streamre.db"
SCHEMA = """
CREATE TABLE IF NOT EXISTS facts (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    t REAL NOT NULL,
    mention TEXT NOT NULL,
    triplets TEXT NOT NULL,
    PRIMARY KEY (room, seq)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mirror_rooms (room TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mirror_nodes (
    room TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (room, id));
CREATE TABLE IF NOT EXISTS mirror_edges (
    room TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (room, id));
"""


def open_sqlite(path: str | Path, schema: str, synchronous: str) -> sqlite3.Connection:
    """A WAL-mode SQLite file (made with its folder if new), autocommit, `schema` applied.

    `synchronous`: FULL survives power loss, NORMAL a killed process (both commit per call).
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.executescript(schema)
    return db


class GraphStore:
    def __init__(self, path: str | Path) -> None:
        """Open (or create) the store file at `path`; a server's is DATA_DIR/streamre.db."""
        self.path = Path(path)
        self._db = open_sqlite(self.path, SCHEMA, "FULL")
        self._lock = threading.Lock()
        self._next_seq = dict(self._db.execute(
            "SELECT room, MAX(seq) + 1 FROM facts GROUP BY room").fetchall())

    # -- settings ---------------------------------------------------------------------------

    def settings(self) -> GraphSettings | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'graph_settings'").fetchone()
        return GraphSettings(**json.loads(row[0])) if row else None

    def save_settings(self, settings: GraphSettings) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('graph_settings', ?)",
                         (json.dumps(asdict(settings)),))

    # -- the journal ------------------------------------------------------------------------

    def append(self, room: str, triplets: list[Triplet], mention: Mention, t: float) -> int:
        """Journal one batch durably; returns its sequence number in the room."""
        payload = json.dumps([[x.head, x.relation, x.tail, x.confidence] for x in triplets])
        with self._lock:
            seq = self._next_seq.get(room, 0)
            with self._db:  # one transaction: all of the batch or none of it
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("INSERT INTO facts VALUES (?, ?, ?, ?, ?)",
                                 (room, seq, t, json.dumps(mention.to_json()), payload))
            self._next_seq[room] = seq + 1
        return seq

    def rooms(self) -> list[str]:
        return [r for (r,) in self._db.execute("SELECT DISTINCT room FROM facts ORDER BY room")]

    def entries(self, room: str) -> Iterator[tuple[list[Triplet], Mention, float]]:
        rows = self._db.execute("SELECT t, mention, triplets FROM facts WHERE room = ? "
                                "ORDER BY seq", (room,))
        for t, mention, triplets in rows:
            yield ([Triplet(h, r, tl, c) for h, r, tl, c in json.loads(triplets)],
                   Mention(**json.loads(mention)), t)

    def load(self, room: str, settings: GraphSettings | None = None) -> RoomGraph:
        """The room rebuilt by replaying its journal."""
        graph = RoomGraph(room, settings or self.settings() or GraphSettings())
        for triplets, mention, t in self.entries(room):
            graph.apply(triplets, mention, t)
        return graph

    # -- mirrored rooms (the MQTT subscriber) -----------------------------------------------

    def save_mirror(self, room: str, version: int, nodes: list[dict], edges: list[dict],
                    replace: bool) -> None:
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

    def mirror_rooms(self) -> list[str]:
        return [r for (r,) in self._db.execute("SELECT room FROM mirror_rooms ORDER BY room")]

    def load_mirror(self, room: str):
        from streamre.mqtt.mirror import MirroredRoom

        (version,) = self._db.execute("SELECT version FROM mirror_rooms WHERE room = ?",
                                      (room,)).fetchone()
        nodes = {i: json.loads(d) for i, d in self._db.execute(
            "SELECT id, data FROM mirror_nodes WHERE room = ?", (room,))}
        edges = {i: json.loads(d) for i, d in self._db.execute(
            "SELECT id, data FROM mirror_edges WHERE room = ?", (room,))}
        return MirroredRoom(room, version, nodes, edges, synced=True)

    def close(self) -> None:
        self._db.close()
