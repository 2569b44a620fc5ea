"""A room's transcript, kept durably: one line per journaled segment or typed sentence (`Said`),
with the edges it stated. It shares the graph store's SQLite file, connection and lock
(`GraphStore.transcript`); a line is written in the same transaction as its facts
(`GraphStore.record`), and lines older than the retention are deleted (`forget_before`). A
person's correction rewrites a line's text, keeping what was heard (`correct`), a change
to the graph rewrites the edges of the lines it touches (`restate`), and a voice's name the
speaker of that voice's lines, kept and to come (`name_voice`)."""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import KeysView

from streamre.graph.entries import Mention
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
CREATE INDEX IF NOT EXISTS segments_by_id ON segments (room, session_id, segment_id);
CREATE TABLE IF NOT EXISTS segment_edges (
    room TEXT NOT NULL, edge TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (room, edge, seq));
CREATE TABLE IF NOT EXISTS voice_names (
    room TEXT NOT NULL, session_id TEXT NOT NULL, voice INTEGER NOT NULL, speaker TEXT NOT NULL,
    PRIMARY KEY (room, session_id, voice));
"""
# Added with corrections: what was heard, and who corrected it (NULL: never corrected); with
# voices: which voice of its session said the line (NULL: not told apart).
SEGMENT_COLUMNS = {"heard": "TEXT", "corrected_by": "TEXT", "voice": "INTEGER"}
SEGMENT_FIELDS = ('session_id, segment_id, speaker, source, start, "end", time, text, edges, '
                  'heard, corrected_by, voice')


class TranscriptStore:
    """Args:
        db: the graph store's connection (its schema made here).
        lock: the graph store's lock, held while writing.
    """

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db, self._lock = db, lock
        self._db.executescript(SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(segments)")}
        for column, kind in SEGMENT_COLUMNS.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE segments ADD COLUMN {column} {kind}")
        self._next = dict(self._db.execute(
            "SELECT room, MAX(seq) + 1 FROM segments GROUP BY room").fetchall())

    def rooms(self) -> KeysView[str]:
        """The rooms with a line kept (or once kept) here (a view: `in` costs no copy)."""
        return self._next.keys()

    def next_seq(self, room: str) -> int:
        return self._next.get(room, 0)

    def insert(self, room: str, seq: int, said: Said) -> None:
        """Write line `seq` of `room`, inside the caller's transaction (`GraphStore.record`);
        said by its voice's name, if that voice was given one."""
        speaker = said.speaker
        if said.voice is not None:
            named = self._db.execute(
                "SELECT speaker FROM voice_names WHERE room = ? AND session_id = ? AND voice = ?",
                (room, said.session_id, said.voice)).fetchone()
            speaker = named[0] if named else speaker
        self._db.execute(
            f"INSERT INTO segments (room, seq, {SEGMENT_FIELDS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (room, seq, said.session_id, said.segment_id, speaker, said.source,
             said.start, said.end, said.time, said.text, json.dumps(list(said.edges)),
             said.heard, said.corrected_by, said.voice))
        self._db.executemany("INSERT OR IGNORE INTO segment_edges VALUES (?, ?, ?)",
                             [(room, e, seq) for e in said.edges])

    def correct(self, room: str, mention: Mention, by: str | None) -> None:
        """Line (`mention`'s session and segment) of `room` shows `mention.text`, and keeps
        what was first heard; inside the caller's transaction. No such line (its op has not
        come yet, or retention took it): nothing to write."""
        self._db.execute(
            "UPDATE segments SET heard = COALESCE(heard, text), text = ?, corrected_by = ? "
            "WHERE room = ? AND session_id = ? AND segment_id = ?",
            (mention.text, by, room, mention.session_id, mention.segment_id))

    def name_voice(self, room: str, session_id: str, voice: int, speaker: str) -> None:
        """Voice `voice` of a session is `speaker`'s: its lines kept now and written later;
        inside the caller's transaction."""
        self._db.execute("INSERT OR REPLACE INTO voice_names VALUES (?, ?, ?, ?)",
                         (room, session_id, voice, speaker))
        self._db.execute("UPDATE segments SET speaker = ? WHERE room = ? AND session_id = ? "
                         "AND voice = ?", (speaker, room, session_id, voice))

    def voice_lines(self, room: str, session_id: str, voice: int) -> list[tuple[int, Said]]:
        """(sequence number, line) of every line one voice of a session said."""
        return self._select(room, "s.session_id = ? AND s.voice = ?", [session_id, voice])

    def restate(self, room: str, edges: dict[tuple[str, int], tuple[str, ...]]) -> None:
        """Each line (session, segment) of `room` in `edges` now states those edges; inside
        the caller's transaction."""
        for (session_id, segment_id), stated in edges.items():
            for (seq,) in self._db.execute(
                    "SELECT seq FROM segments WHERE room = ? AND session_id = ? AND "
                    "segment_id = ?", (room, session_id, segment_id)).fetchall():
                self._db.execute("UPDATE segments SET edges = ? WHERE room = ? AND seq = ?",
                                 (json.dumps(list(stated)), room, seq))
                self._db.execute("DELETE FROM segment_edges WHERE room = ? AND seq = ?",
                                 (room, seq))
                self._db.executemany("INSERT OR IGNORE INTO segment_edges VALUES (?, ?, ?)",
                                     [(room, e, seq) for e in stated])

    def line(self, room: str, session_id: str, segment_id: int) -> tuple[int, Said] | None:
        """(sequence number, line) of one segment of `room`, or None."""
        found = self._select(room, "s.session_id = ? AND s.segment_id = ?",
                             [session_id, segment_id])
        return found[0] if found else None

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
        return self._rows(query, args)

    def _select(self, room: str, where: str, args: list) -> list[tuple[int, Said]]:
        return self._rows(f"SELECT s.seq, {SEGMENT_FIELDS} FROM segments s WHERE s.room = ? "
                          f"AND {where} ORDER BY s.seq", [room, *args])

    def _rows(self, query: str, args: list) -> list[tuple[int, Said]]:
        return [(seq, Said(sid, index, who, source, start, end, t, text, tuple(json.loads(e)),
                           heard, by, voice))
                for seq, sid, index, who, source, start, end, t, text, e, heard, by, voice
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
