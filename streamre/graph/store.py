"""Persistence: every batch of facts a room takes in is journaled in SQLite before it is applied
and announced; replaying the journal rebuilds each room exactly (ids, mentions, version). A
room's vocabulary (the names it expects to hear) is kept beside its facts.

One file (`streamre.db` in the data dir), WAL mode, `synchronous=FULL`, one transaction per
batch: a process killed at any moment leaves either the whole batch or none of it, and nothing
that was announced is lost. The graph settings the journal was written with are kept beside
it, so `streamre graph export` replays with the same ones.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from streamre.graph.room import GraphSettings, Mention, RoomGraph
from streamre.room_name import check_room
from streamre.storage import open_sqlite
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
CREATE TABLE IF NOT EXISTS vocabulary (room TEXT PRIMARY KEY, phrases TEXT NOT NULL);
"""


class GraphStore:
    def __init__(self, path: str | Path) -> None:
        """Open (or create) the store file at `path`; a server's is DATA_DIR/streamre.db."""
        self.path = Path(path)
        self._db = open_sqlite(self.path, SCHEMA, "FULL")
        self._lock = threading.Lock()
        self._next_seq = dict(self._db.execute(
            "SELECT room, MAX(seq) + 1 FROM facts GROUP BY room").fetchall())
        self._vocabularies: dict[str, tuple[str, ...]] = {
            room: tuple(json.loads(phrases))
            for room, phrases in self._db.execute("SELECT room, phrases FROM vocabulary")}

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
        check_room(room)
        payload = json.dumps([[x.head, x.relation, x.tail, x.confidence] for x in triplets])
        with self._lock:
            seq = self._next_seq.get(room, 0)
            with self._db:  # one transaction: all of the batch or none of it
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("INSERT INTO facts VALUES (?, ?, ?, ?, ?)",
                                 (room, seq, t, json.dumps(mention.to_json()), payload))
            self._next_seq[room] = seq + 1
        return seq

    def has_room(self, room: str) -> bool:
        """Whether any fact or a vocabulary of `room` is journaled."""
        return room in self._next_seq or room in self._vocabularies

    def rooms(self) -> list[str]:
        return sorted({*self._next_seq, *self._vocabularies})

    # -- vocabularies -----------------------------------------------------------------------

    def vocabulary(self, room: str) -> tuple[str, ...]:
        """The phrases `room` was last given (none if never)."""
        return self._vocabularies.get(room, ())

    def save_vocabulary(self, room: str, phrases: tuple[str, ...]) -> None:
        """Keep `room`'s vocabulary durably (an empty one is forgotten)."""
        check_room(room)
        with self._lock:
            if phrases:
                self._db.execute("INSERT OR REPLACE INTO vocabulary VALUES (?, ?)",
                                 (room, json.dumps(list(phrases))))
                self._vocabularies[room] = tuple(phrases)
            else:
                self._db.execute("DELETE FROM vocabulary WHERE room = ?", (room,))
                self._vocabularies.pop(room, None)

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

    def close(self) -> None:
        self._db.close()
