"""SQLite files as this project keeps them: WAL mode, autocommit, a schema applied on open.

The graph journal (`streamre.graph.store`), the MQTT subscriber's mirror and the MQTT outbox
(`streamre.mqtt`) each keep their tables through this one opener.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


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
