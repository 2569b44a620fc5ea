"""The publisher's outbox: a bounded, persistent FIFO of MQTT messages in SQLite.

Messages are appended as they happen (on the event loop, cheap) and deleted only once the broker
has acknowledged them, so a broker that is down, or a restart of the server, loses nothing while
the outbox has room. When it is full new messages are refused and counted; subscribers recover
from the next retained snapshot.
"""

from __future__ import annotations

from pathlib import Path

from streamre.storage import open_sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL
);
"""


class MqttOutbox:
    def __init__(self, path: str | Path, max_messages: int = 100_000) -> None:
        self.max_messages = max_messages
        self._db = open_sqlite(path, SCHEMA, "NORMAL")  # survives a killed process
        self._count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self.refused = 0

    def __len__(self) -> int:
        return self._count

    def put(self, topic: str, payload: bytes, retain: bool = False) -> bool:
        """Queue a message; False (and counted) when the outbox is full."""
        if self._count >= self.max_messages:
            self.refused += 1
            return False
        self._db.execute("INSERT INTO outbox (topic, payload, retain) VALUES (?, ?, ?)",
                         (topic, payload, int(retain)))
        self._count += 1
        return True

    def peek(self, limit: int = 100) -> list[tuple[int, str, bytes, bool]]:
        """The oldest messages, in order, without removing them."""
        rows = self._db.execute("SELECT seq, topic, payload, retain FROM outbox ORDER BY seq "
                                "LIMIT ?", (limit,)).fetchall()
        return [(seq, t, p, bool(r)) for seq, t, p, r in rows]

    def remove(self, seq: int) -> None:
        """Acknowledged by the broker."""
        if self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount:
            self._count -= 1

    def close(self) -> None:
        self._db.close()
