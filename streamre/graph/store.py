"""Persistence: every segment a room hears or reads is journaled in SQLite, with the batch of
facts it gave, before either is announced; replaying the facts rebuilds each room exactly (ids,
mentions, version). Beside the facts and ops kept here, the same file and transaction keep the
segments, the room's transcript (`streamre.graph.transcript_store`), and what a room expects to
hear (its vocabulary, context and typed names: `streamre.graph.names_store`).

One file (`streamre.db` in the data dir), WAL mode, `synchronous=FULL`, one transaction per
segment: a process killed at any moment leaves the whole segment and its facts or none of it.
Each batch of facts keeps when it was written, so a replay stopped early rebuilds the graph
as it was at any version or time. The graph settings it was written with are kept beside it.

A person's correction of a line or merge of two entities is journaled in the same sequence as
the batches (`change`), and the lines it changes are rewritten in the same transaction, so a
replay meets each change where it was made. Every segment's batch is journaled, one with no
facts too: a correction may give it some, in its place.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from streamre.graph.names_store import RoomNamesStore
from streamre.graph.ops import Op
from streamre.graph.entries import Batch, Change, Correction, Mention, VoiceName, change_from_json
from streamre.graph.room import RoomGraph
from streamre.graph.settings import GraphSettings
from streamre.graph.transcript import Said
from streamre.graph.transcript_store import TranscriptStore
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
CREATE TABLE IF NOT EXISTS ops (
    room TEXT NOT NULL, origin TEXT NOT NULL, seq INTEGER NOT NULL, key REAL NOT NULL,
    op TEXT NOT NULL, merged REAL NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (room, origin, seq));
CREATE INDEX IF NOT EXISTS ops_in_order ON ops (room, key, origin, seq);
"""
# A clustered room (`serve --cluster`) keeps its facts as ops (streamre.cluster): each whole,
# as its origin made it, with when this instance merged it and its graph version after.
# Added to `facts` after its first release: when a batch was written (Unix seconds); NULL in
# older journals, whose batches count by their meeting time instead. Then `change`: a
# correction's or merge's JSON (`Change.to_json`) in a row that is no batch, else NULL.
FACT_COLUMNS = {"wall": "REAL", "change": "TEXT"}


class GraphStore:
    def __init__(self, path: str | Path) -> None:
        """Open (or create) the store file at `path`; a server's is DATA_DIR/streamre.db."""
        self.path = Path(path)
        self._db = open_sqlite(self.path, SCHEMA, "FULL")
        have = {row[1] for row in self._db.execute("PRAGMA table_info(facts)")}
        for column, kind in FACT_COLUMNS.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE facts ADD COLUMN {column} {kind}")
        self._lock = threading.Lock()
        self._next_seq = dict(self._db.execute(
            "SELECT room, MAX(seq) + 1 FROM facts GROUP BY room").fetchall())
        self._op_rooms = {room for (room,) in self._db.execute("SELECT DISTINCT room FROM ops")}
        self.transcript = TranscriptStore(self._db, self._lock)
        self.names = RoomNamesStore(self._db, self._lock)

    # -- settings ---------------------------------------------------------------------------

    def settings(self) -> GraphSettings | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'graph_settings'").fetchone()
        return GraphSettings(**json.loads(row[0])) if row else None

    def save_settings(self, settings: GraphSettings) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('graph_settings', ?)",
                         (json.dumps(asdict(settings)),))

    # -- the journal ------------------------------------------------------------------------

    def append(self, room: str, triplets: list[Triplet], mention: Mention, t: float,
               wall: float | None = None) -> int:
        """Journal one batch of facts durably (with no transcript segment); returns its
        sequence number in the room."""
        return self.record(room, None, triplets, mention, t, wall)[0]

    def record(self, room: str, said: Said | None, triplets: list[Triplet], mention: Mention,
               t: float, wall: float | None = None, op: Op | None = None, version: int = 0
               ) -> tuple[int | None, int | None]:
        """Journal a segment and the facts it gave in one durable transaction: all of it or
        none; `wall` is when (Unix seconds). A clustered room gives its `op` instead of the
        facts, with its graph `version` after merging it. Returns the facts' sequence number
        and the segment's (None for what was not given)."""
        check_room(room)
        with self._lock:
            fact_seq = self._next_seq.get(room, 0) if op is None else None
            said_seq = self.transcript.next_seq(room) if said is not None else None
            with self._db:  # one transaction: all of the segment or none of it
                self._db.execute("BEGIN IMMEDIATE")
                if op is not None:
                    self._insert_op(op, wall or 0.0, version)
                if fact_seq is not None:
                    payload = json.dumps([x.to_row() for x in triplets])
                    self._db.execute(
                        "INSERT INTO facts (room, seq, t, mention, triplets, wall) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (room, fact_seq, t, json.dumps(mention.to_json()), payload, wall))
                if said is not None:
                    self.transcript.insert(room, said_seq, said)
            if fact_seq is not None:
                self._next_seq[room] = fact_seq + 1
            if op is not None:
                self._op_rooms.add(room)
            if said_seq is not None:
                self.transcript.inserted(room, said_seq)
        return fact_seq, said_seq

    def change(self, room: str, change: Change, wall: float,
               restated: dict[tuple[str, int], tuple[str, ...]], op: Op | None = None,
               version: int = 0) -> None:
        """Journal a correction, merge or voice's name (a clustered room: its `op`, with the
        graph `version` after it) and, in the same transaction, the lines it changes: the
        corrected one's text, the named voice's speaker, and the edges of each line in
        `restated` ((session, segment) -> edge ids)."""
        check_room(room)
        with self._lock:
            fact_seq = self._next_seq.get(room, 0) if op is None else None
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                if op is not None:
                    self._insert_op(op, wall, version)
                else:
                    self._db.execute(
                        "INSERT INTO facts (room, seq, t, mention, triplets, wall, change) "
                        "VALUES (?, ?, ?, '{}', '[]', ?, ?)",
                        (room, fact_seq, change.at, wall, json.dumps(change.to_json())))
                if isinstance(change, Correction):
                    self.transcript.correct(room, change.mention, change.by)
                elif isinstance(change, VoiceName):
                    self.transcript.name_voice(room, change.session_id, change.voice,
                                               change.speaker)
                self.transcript.restate(room, restated)
            if fact_seq is not None:
                self._next_seq[room] = fact_seq + 1
            if op is not None:
                self._op_rooms.add(room)

    def _insert_op(self, op: Op, wall: float, version: int) -> None:
        """One op row, inside the caller's transaction."""
        self._db.execute("INSERT INTO ops VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (op.room, op.origin, op.seq, op.key, json.dumps(op.to_json()), wall,
                          version))

    def has_room(self, room: str) -> bool:
        """Whether any fact, segment, op or expected name of `room` is journaled."""
        return room in self._next_seq or room in self.transcript.rooms() or \
            room in self._op_rooms or room in self.names.rooms()

    def rooms(self) -> list[str]:
        return sorted({*self._next_seq, *self.transcript.rooms(), *self.names.rooms(),
                       *self._op_rooms})

    # -- a clustered room's ops -------------------------------------------------------------

    def ops(self, room: str, version: int | None = None, merged_by: float | None = None,
            origin: str | None = None, after: int = 0) -> list[Op]:
        """`room`'s ops in the total order: those merged by graph `version` or by time
        `merged_by`, or `origin`'s after seq `after`."""
        where, args = ["room = ?"], [room]
        for clause, value in (("version <= ?", version), ("merged <= ?", merged_by),
                              ("origin = ?", origin)):
            if value is not None:
                where.append(clause)
                args.append(value)
        if origin is not None:
            where.append("seq > ?")
            args.append(after)
        rows = self._db.execute(f"SELECT op FROM ops WHERE {' AND '.join(where)} "
                                "ORDER BY key, origin, seq", args)
        return [Op.from_json(json.loads(op)) for (op,) in rows]

    def has_op(self, op: Op) -> bool:
        return self._db.execute("SELECT 1 FROM ops WHERE room = ? AND origin = ? AND seq = ?",
                                (op.room, op.origin, op.seq)).fetchone() is not None

    def op_ids(self) -> list[tuple[str, str, int, float]]:
        """(room, origin, seq, when merged) of every op journaled here."""
        return self._db.execute("SELECT room, origin, seq, merged FROM ops").fetchall()

    def op_version(self, room: str, merged_by: float = float("inf")) -> int:
        """The graph version this instance had reached in a clustered room (by then)."""
        return self._db.execute("SELECT COALESCE(MAX(version), 0) FROM ops WHERE room = ? AND "
                                "merged <= ?", (room, merged_by)).fetchone()[0]

    def clustered(self, room: str) -> bool:
        return room in self._op_rooms

    def began(self, room: str) -> float | None:
        """When the room's record begins: its first segment or fact, Unix seconds."""
        firsts = [first for first in (self.transcript.first_said(room), self._db.execute(
            "SELECT MIN(COALESCE(wall, t)) FROM facts WHERE room = ?", (room,)).fetchone()[0])
            if first is not None]
        return min(firsts) if firsts else None

    def entries(self, room: str, written_by: float | None = None) -> Iterator[Batch | Change]:
        """The room's batches of facts and changes in journal order; with `written_by`, those
        before the first written later than that (Unix seconds; an older journal's batches
        count by meeting time): the graph's state then, even if the clock once stepped back."""
        query = "SELECT t, mention, triplets, change FROM facts WHERE room = ?"
        args: list = [room]
        if written_by is not None:
            query += (" AND seq < COALESCE((SELECT MIN(seq) FROM facts WHERE room = ? AND "
                      "COALESCE(wall, t) > ?), 9e18)")
            args += [room, written_by]
        for t, mention, triplets, change in self._db.execute(query + " ORDER BY seq", args):
            if change is not None:
                yield change_from_json(json.loads(change))
            else:
                yield Batch(tuple(Triplet.from_row(row) for row in json.loads(triplets)),
                            Mention(**json.loads(mention)), t)

    def load(self, room: str, settings: GraphSettings | None = None,
             version: int | None = None, written_by: float | None = None) -> RoomGraph | None:
        """The room rebuilt by replaying its journal: all of it, up to graph `version` (None
        if the room never reached it), or what was written by `written_by`."""
        if self.clustered(room):
            return self._load_ops(room, settings, version, written_by)
        graph = RoomGraph(room, settings or self.settings() or GraphSettings())
        for entry in self.entries(room, written_by):
            if version is not None and graph.version >= version:
                break
            if isinstance(entry, Batch):
                graph.apply(entry.triplets, entry.mention, entry.at)
            else:  # a correction or merge, where it was made
                graph.change(entry, wait=False)
        if version is not None and graph.version != version:
            return None
        return graph

    def _load_ops(self, room: str, settings: GraphSettings | None, version: int | None,
                  merged_by: float | None) -> RoomGraph | None:
        """A clustered room's graph: its ops merged by then, replayed in the total order."""
        if version is not None and version > self.op_version(room):
            return None
        graph = RoomGraph(room, settings or self.settings() or GraphSettings())
        for op in self.ops(room, version, merged_by):
            if op.change is not None:
                graph.change(op.change, wait=True)
            else:
                graph.apply(op.triplets, op.mention(), op.at)
        graph.version = version if version is not None else self.op_version(
            room, float("inf") if merged_by is None else merged_by)
        return graph

    def close(self) -> None:
        self._db.close()
