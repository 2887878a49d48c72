"""The SQLite store: one file in WAL mode, ``synchronous=FULL``, ``secure_delete`` on.

Writes run on one connection, each call one ``BEGIN IMMEDIATE`` transaction: an acknowledged enrolment
survives ``kill -9`` and power loss. Reads use a connection per thread and never wait on the writer.
After a transaction that deleted faces, a ``wal_checkpoint(TRUNCATE)`` copies the zeroed pages into the
database file and empties the WAL, so the deleted crops and embeddings are in no file any more.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from facepipe.errors import ConfigError
from facepipe.gallery import writes
from facepipe.gallery.schema import SCHEMA_VERSION, SQLITE, statements
from facepipe.gallery.store import Store, Tx

log = logging.getLogger(__name__)
T = TypeVar("T")


class SqliteStore(Store):
    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        self._local = threading.local()
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        for _ in range(600):  # switching to WAL takes a lock that the busy timeout does not wait for
            try:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                time.sleep(0.05)
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA secure_delete=ON")  # freed cells and pages are overwritten with zeros
        return db

    def _migrate(self) -> None:
        """Bring the schema up to date in one exclusive transaction (several server processes may
        open the same file at once: the first migrates, the others find it done)."""
        db = self._writer
        db.execute("BEGIN IMMEDIATE")
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"gallery {self.path} has schema version {version}, newer than this facepipe "
                    f"({SCHEMA_VERSION}): upgrade facepipe"
                )
            for i in range(version, SCHEMA_VERSION):
                for statement in statements(SQLITE, i):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {i + 1}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _reader(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
        return db

    def close(self) -> None:
        self._writer.close()

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Reads every row: a half-read statement would keep its read transaction, and with it an
        old snapshot, open on this thread's connection."""
        return list(self._reader().execute(sql, tuple(args)).fetchall())

    def write(self, fn: Callable[[Tx], T]) -> T:
        db = self._writer
        tx = Tx(db, SQLITE, sqlite3.IntegrityError)
        db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(tx)
            writes.prune(tx)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        if tx.erased:
            self.erase()
        return out

    def erase(self) -> None:
        """Move every committed page into the database file and truncate the WAL to zero bytes
        (waits, with the busy timeout, for readers still on an older snapshot)."""
        busy, _, _ = self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.warning("gallery %s: WAL checkpoint after a delete was blocked by a reader", self.path)
