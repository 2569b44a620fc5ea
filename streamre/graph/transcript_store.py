"""A room's transcript, kept durably: one line per journaled segment or typed sentence (`Said`),
with the edges it stated. It shares the graph store's SQLite file, connection and lock
(`GraphStore.transcript`); a line is written in the same transaction as its facts
(`GraphStore.record`), and lines older than the retention are deleted (`forget_before`)."""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import KeysView

from streamre.graph.transcript import Said

SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    segment_id INTEGER NOT NULL,
    speaker TEXT,
    source TEXT NOT NULL,
    start REAL,
    "end" REAL,
    time REAL NOT NULL,
    text TEXT NOT NULL,
    edges TEXT NOT NULL,
    PRIMARY KEY (room, seq)
);
CREATE INDEX IF NOT EXISTS segments_by_time ON segments (time);
CREATE TABLE IF NOT EXISTS segment_edges (
    room TEXT NOT NULL, edge TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (room, edge, seq));
"""
SEGMENT_FIELDS = 'session_id, segment_id, speaker, source, start, "end", time, text, edges'


class TranscriptStore:
    """Args:
        db: the graph store's connection (its schema made here).
        lock: the graph store's lock, held while writing.
    """

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db, self._lock = db, lock
        self._db.executescript(SCHEMA)
        self._next = dict(self._db.execute(
            "SELECT room, MAX(seq) + 1 FROM segments GROUP BY room").fetchall())

    def rooms(self) -> KeysView[str]:
        """The rooms with a line kept (or once kept) here (a view: `in` costs no copy)."""
        return self._next.keys()

    def next_seq(self, room: str) -> int:
        return self._next.get(room, 0)

    def insert(self, room: str, seq: int, said: Said) -> None:
        """Write line `seq` of `room`, inside the caller's transaction (`GraphStore.record`)."""
        self._db.execute(
            f"INSERT INTO segments (room, seq, {SEGMENT_FIELDS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (room, seq, said.session_id, said.segment_id, said.speaker, said.source,
             said.start, said.end, said.time, said.text, json.dumps(list(said.edges))))
        self._db.executemany("INSERT OR IGNORE INTO segment_edges VALUES (?, ?, ?)",
                             [(room, e, seq) for e in said.edges])

    def inserted(self, room: str, seq: int) -> None:
        """Line `seq` of `room` is committed: the next one follows it."""
        self._next[room] = seq + 1

    def speakers(self, room: str) -> tuple[str, ...]:
        """The speaker names of `room`'s transcript, in the order they first spoke."""
        return tuple(speaker for (speaker,) in self._db.execute(
            "SELECT speaker FROM segments WHERE room = ? AND speaker IS NOT NULL "
            "GROUP BY speaker ORDER BY MIN(seq)", (room,)))

    def lines(self, room: str, after: int = -1, limit: int | None = None,
              speaker: str | None = None, edge: str | None = None) -> list[tuple[int, Said]]:
        """(sequence number, segment) of `room` after sequence number `after`, oldest first:
        at most `limit`, only `speaker`'s, or only those that stated `edge`."""
        query = f"SELECT s.seq, {SEGMENT_FIELDS} FROM segments s"
        where, args = ["s.room = ?", "s.seq > ?"], [room, after]
        if edge is not None:
            query += " JOIN segment_edges e ON e.room = s.room AND e.seq = s.seq AND e.edge = ?"
            args.insert(0, edge)
        if speaker is not None:
            where.append("s.speaker = ?")
            args.append(speaker)
        query += " WHERE " + " AND ".join(where) + " ORDER BY s.seq"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        return [(seq, Said(sid, index, who, source, start, end, t, text, tuple(json.loads(e))))
                for seq, sid, index, who, source, start, end, t, text, e
                in self._db.execute(query, args)]

    def first_said(self, room: str) -> float | None:
        """When the room's first journaled segment began (Unix seconds): where its subtitles'
        clock starts, so every page of them shares one clock."""
        return self._db.execute("SELECT MIN(time) FROM segments WHERE room = ?",
                                (room,)).fetchone()[0]

    def forget_before(self, cutoff: float) -> int:
        """The retention rule: every room's segments said before `cutoff` (Unix seconds) are
        deleted; the graph's facts stay. Returns how many went."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM segment_edges WHERE (room, seq) IN "
                             "(SELECT room, seq FROM segments WHERE time < ?)", (cutoff,))
            return self._db.execute("DELETE FROM segments WHERE time < ?", (cutoff,)).rowcount
