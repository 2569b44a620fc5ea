"""What a room expects to hear, kept durably beside its journal: its vocabulary (a list of
phrases), the meeting's context (the text as a person wrote it, and the names found in it),
the names people typed in chat lines and notes, and what their corrections taught (pairs of
heard words and the name meant). Each is replaced whole; an empty one is
forgotten. It shares the graph store's SQLite file, connection and lock (`GraphStore.names`)."""

from __future__ import annotations

import json
import sqlite3
import threading

from streamre.room_name import check_room

SCHEMA = """
CREATE TABLE IF NOT EXISTS vocabulary (room TEXT PRIMARY KEY, phrases TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS room_words (
    room TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (room, kind));
"""
CONTEXT, CHAT_NAMES, LEARNT = "context", "chat_names", "learnt"  # the kinds of `room_words`


class RoomNamesStore:
    """Args:
        db: the graph store's connection (its schema made here).
        lock: the graph store's lock, held while writing.
    """

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db, self._lock = db, lock
        self._db.executescript(SCHEMA)
        self._vocabularies: dict[str, tuple[str, ...]] = {
            room: tuple(json.loads(phrases))
            for room, phrases in self._db.execute("SELECT room, phrases FROM vocabulary")}
        self._words: dict[tuple[str, str], object] = {
            (room, kind): json.loads(value)
            for room, kind, value in self._db.execute("SELECT room, kind, value FROM room_words")}

    def rooms(self) -> set[str]:
        """The rooms with anything kept here."""
        return {*self._vocabularies, *(room for room, _ in self._words)}

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

    def context(self, room: str) -> tuple[str, tuple[str, ...]]:
        """`room`'s context and the names found in it (empty if never given)."""
        text, names = self._words.get((room, CONTEXT), ("", []))
        return text, tuple(names)

    def save_context(self, room: str, text: str, names: tuple[str, ...]) -> None:
        self._save(room, CONTEXT, [text, list(names)] if text else None)

    def chat_names(self, room: str) -> tuple[str, ...]:
        """The names found in what people typed in `room`, in the order they came."""
        return tuple(self._words.get((room, CHAT_NAMES), ()))

    def save_chat_names(self, room: str, names: tuple[str, ...]) -> None:
        self._save(room, CHAT_NAMES, list(names) or None)

    def learnt(self, room: str) -> tuple[tuple[str, str], ...]:
        """The (heard words, meant name) pairs `room` learnt, oldest first."""
        return tuple((heard, meant) for heard, meant in self._words.get((room, LEARNT), ()))

    def save_learnt(self, room: str, pairs: list[tuple[str, str]]) -> None:
        self._save(room, LEARNT, [list(p) for p in pairs] or None)

    def _save(self, room: str, kind: str, value: object | None) -> None:
        """Keep one kind of `room`'s words durably; None forgets it."""
        check_room(room)
        with self._lock, self._db:
            if value is None:
                self._db.execute("DELETE FROM room_words WHERE room = ? AND kind = ?",
                                 (room, kind))
                self._words.pop((room, kind), None)
            else:
                self._db.execute("INSERT OR REPLACE INTO room_words VALUES (?, ?, ?)",
                                 (room, kind, json.dumps(value)))
                self._words[room, kind] = value
