"""The PostgreSQL store (psycopg 3): the same schema, statements and change log as SQLite.

Writes run on one connection, each call one transaction that first takes a transaction-scoped
advisory lock: writers of every server process commit one at a time, so ``changes.seq`` values become
visible in order and the log has no gaps a follower could skip. The transaction ends with
``NOTIFY facepipe_changes`` (delivered at commit): a listener thread per server wakes its gallery to
catch up from ``changes`` at once; a missed notification is caught on the next read, as with SQLite.

Connection loss: every call that cannot reach the server raises ``StoreUnavailable`` (HTTP 503) with
the reason; the next calls reconnect by themselves, at most once per backoff interval (0.1 s doubling
to 2 s), and the listener reconnects and catches up as soon as the server is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from facepipe.errors import ConfigError, StoreUnavailable
from facepipe.gallery import writes
from facepipe.gallery.pgvector import VectorOptions, prepare, table_dim
from facepipe.gallery.schema import POSTGRES, SCHEMA_VERSION, spell, statements
from facepipe.gallery.store import Store, Tx

log = logging.getLogger(__name__)
T = TypeVar("T")
CHANNEL = "facepipe_changes"
WRITE_LOCK = 0x66616365  # pg_advisory_xact_lock key held by every gallery write ("face")
LOST = (psycopg.OperationalError, psycopg.InterfaceError)
# a server that vanishes without closing its sockets is noticed within ~11 s, not hours
SNAPSHOT_WAIT_S = 2.0
# sessions of this database whose snapshot or transaction is as old as the deleting transaction
OLDER_SNAPSHOTS = b"""SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
    AND pid <> pg_backend_pid()
    AND (age(backend_xmin) >= age(%(x)s::xid) OR age(backend_xid) >= age(%(x)s::xid))"""
KEEPALIVE: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


@dataclass(slots=True)
class Backoff:
    """After a failure, calls fail fast with its reason until the next attempt is due."""

    delay: float = 0.0
    due: float = 0.0
    reason: str = ""

    def check(self) -> None:
        if self.reason and time.monotonic() < self.due:
            raise StoreUnavailable(self.reason)

    def failed(self, reason: str) -> float:
        self.delay = min(max(self.delay * 2, 0.1), 2.0)
        self.due, self.reason = time.monotonic() + self.delay, reason
        return self.delay

    def ok(self) -> None:
        self.delay, self.due, self.reason = 0.0, 0.0, ""


def where(url: str) -> str:
    """host:port/dbname of ``url``, without user or password (for messages and logs)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"gallery.store: not a valid PostgreSQL URL: {exc}") from None
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


class PostgresStore(Store):
    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        connect_timeout_s: int = 3,
        full_vacuum: bool = False,
        vectors: VectorOptions | None = None,
    ) -> None:
        self.url, self.where = url, where(url)
        self.vectors = vectors  # gallery.index: pgvector (face_vectors kept, identify in PostgreSQL)
        self._vector_dim = vectors.dim if vectors else None  # writes keep face_vectors of this size
        self.full_vacuum = full_vacuum
        self._timeout = connect_timeout_s
        self._local = threading.local()
        self._open: list[psycopg.Connection[Any]] = []
        self._open_lock = threading.Lock()
        self._backoff = Backoff()
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._wakes: list[Callable[[], None]] = []
        self.listening = threading.Event()  # set while the listener is connected and listening
        self._retry = threading.Event()  # cuts the listener's backoff short: the server is back
        self._writer: psycopg.Connection[Any] | None = None
        self._writer_gen = 0
        # bumped whenever the server was found gone: every connection opened before is then replaced
        # on its next use, instead of failing one more call per thread after the server is back
        self._generation = 0
        try:
            self._migrate()
        except StoreUnavailable as exc:
            raise ConfigError(f"gallery.store: {exc.message}") from None

    def _connect(self) -> psycopg.Connection[Any]:
        extra: dict[str, Any] = {"options": self.vectors.session()} if self.vectors else {}
        db = psycopg.connect(self.url, autocommit=True, connect_timeout=self._timeout, **KEEPALIVE, **extra)
        with self._open_lock:
            self._open = [c for c in self._open if not c.closed]
            self._open.append(db)
        return db

    @contextmanager
    def _guard(self, drop: Callable[[], None]) -> Iterator[None]:
        """Turn a lost connection into ``StoreUnavailable`` (and drop that connection)."""
        self._backoff.check()
        try:
            yield
        except LOST as exc:
            drop()
            self._generation += 1
            reason = f"gallery store {self.where} unreachable: {str(exc).strip().splitlines()[0]}"
            self._backoff.failed(reason)
            log.warning("%s", reason)
            raise StoreUnavailable(f"{reason}; writes are refused until it is back (reconnecting)") from None
        if self._backoff.reason:  # a call got through after a failure: the listener retries now too
            self._retry.set()
        self._backoff.ok()

    def _drop_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = None

    def _drop_reader(self) -> None:
        db: psycopg.Connection[Any] | None = getattr(self._local, "db", None)
        if db is not None:
            db.close()
        self._local.db = None

    def _writer_db(self) -> psycopg.Connection[Any]:
        if (
            self._writer is None
            or self._writer.closed
            or self._writer.broken
            or self._writer_gen != self._generation
        ):
            self._drop_writer()
            self._writer, self._writer_gen = self._connect(), self._generation
        return self._writer

    def _reader(self) -> psycopg.Connection[Any]:
        db: psycopg.Connection[Any] | None = getattr(self._local, "db", None)
        if db is None or db.closed or db.broken or getattr(self._local, "gen", -1) != self._generation:
            self._drop_reader()
            db = self._connect()
            self._local.db, self._local.gen = db, self._generation
        return db

    def _migrate(self) -> None:
        """Bring the schema up to date in one transaction under the write lock (several servers
        may start at once: the first migrates, the others find it done)."""
        with self._guard(self._drop_writer):
            db = self._writer_db()
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                db.execute("CREATE TABLE IF NOT EXISTS facepipe_schema (version INTEGER NOT NULL)")
                row = db.execute("SELECT version FROM facepipe_schema").fetchone()
                if row is None:
                    db.execute("INSERT INTO facepipe_schema (version) VALUES (0)")
                version = int(row[0]) if row else 0
                if version > SCHEMA_VERSION:
                    raise ConfigError(
                        f"gallery {self.where} has schema version {version}, newer than this facepipe "
                        f"({SCHEMA_VERSION}): upgrade facepipe"
                    )
                for i in range(version, SCHEMA_VERSION):
                    for statement in statements(POSTGRES, i):
                        db.execute(statement.encode())
                    db.execute("UPDATE facepipe_schema SET version = %s", (i + 1,))
                if self.vectors is not None:
                    self._prepare_vectors(db, self.vectors)
                elif table_dim(db) is not None:  # another server searches with pgvector: keep it in step
                    self._vector_dim = table_dim(db)

    def _prepare_vectors(self, db: psycopg.Connection[Any], vectors: VectorOptions) -> None:
        try:
            prepare(db, vectors)
        except (psycopg.errors.UndefinedFile, psycopg.errors.FeatureNotSupported) as exc:
            raise ConfigError(
                f"gallery.index: pgvector needs the pgvector extension on {self.where}: "
                f"{str(exc).strip().splitlines()[0]} (docs/gallery.md)"
            ) from None

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._guard(self._drop_reader):
            return list(self._reader().execute(spell(sql, POSTGRES).encode(), tuple(args)).fetchall())

    def write(self, fn: Callable[[Tx], T]) -> T:
        with self._guard(self._drop_writer):
            db = self._writer_db()
            tx = Tx(db, POSTGRES, psycopg.IntegrityError, vector_dim=self._vector_dim)
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                out = fn(tx)
                writes.prune(tx)
                db.execute(f"NOTIFY {CHANNEL}".encode())
                xid = _count(db.execute(b"SELECT pg_current_xact_id()::text").fetchone()) if tx.erased else 0
        if tx.erased:
            self.erase(xid)
        return out

    def _wait_for_snapshots(self, db: psycopg.Connection[Any], xid: int) -> None:
        """Wait (up to ``SNAPSHOT_WAIT_S``) until no other session of this database can still see
        rows deleted by transaction ``xid``: VACUUM keeps (and VACUUM FULL copies) such rows."""
        deadline = time.monotonic() + SNAPSHOT_WAIT_S
        while (n := _count(db.execute(OLDER_SNAPSHOTS, {"x": str(xid % 2**32)}).fetchone())) > 0:
            if time.monotonic() > deadline:
                log.warning("gallery: %d sessions still see deleted rows; VACUUM may keep them", n)
                return
            time.sleep(0.02)

    def erase(self, xid: int) -> None:
        """VACUUM the tables a delete touched. Plain VACUUM frees the deleted rows' space (and their
        TOAST chunks') for reuse, without locking readers out, but leaves the bytes in the table's
        files until new rows overwrite them; VACUUM FULL (``gallery.pg_erase: vacuum_full``) rewrites
        ``faces`` and ``subjects`` into new files, locking them while it runs. Neither clears WAL
        segments: docs/gallery.md."""
        sql = b"VACUUM FULL faces, subjects" if self.full_vacuum else b"VACUUM faces, subjects"
        try:
            with self._guard(self._drop_writer):
                db = self._writer_db()
                self._wait_for_snapshots(db, xid)
                db.execute(sql)
                db.execute(b"VACUUM changes")
        except StoreUnavailable as exc:
            log.warning(
                "gallery: VACUUM after a delete failed (the next delete or autovacuum redoes it): %s", exc
            )

    def available(self) -> bool:
        """False from a lost connection until a call or the listener gets through again."""
        return not self._backoff.reason

    def follow(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (and every earlier one: a gallery and its collections) on each change."""
        self._wakes.append(wake)
        if self._listener is None:
            self._listener = threading.Thread(
                target=self._listen, args=(self._wake_all,), name="gallery-listen", daemon=True
            )
            self._listener.start()

    def _wake_all(self) -> None:
        for wake in list(self._wakes):
            wake()

    def _listen(self, wake: Callable[[], None]) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.url, autocommit=True, connect_timeout=self._timeout, **KEEPALIVE
                ) as db:
                    db.execute(f"LISTEN {CHANNEL}".encode())
                    if backoff.reason:
                        log.info("gallery store %s reachable again", self.where)
                    backoff.ok()
                    self._backoff.ok()  # writes may try again at once
                    _wake(wake)  # what changed while nobody listened
                    self.listening.set()
                    while not self._stop.is_set():
                        if list(db.notifies(timeout=0.5, stop_after=1)):
                            _wake(wake)
            except LOST as exc:
                self.listening.clear()
                self._generation += 1
                delay = backoff.failed(str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__)
                self._backoff.failed(f"gallery store {self.where} unreachable: {backoff.reason}")
                log.warning(
                    "gallery listener lost %s (%s); retrying in %.1f s", self.where, backoff.reason, delay
                )
                self._retry.wait(delay)
                self._retry.clear()

    def close(self) -> None:
        self._stop.set()
        self._retry.set()
        if self._listener is not None:
            self._listener.join(5)
        with self._open_lock:
            for db in self._open:
                db.close()
            self._open.clear()


def _wake(wake: Callable[[], None]) -> None:
    try:
        wake()
    except StoreUnavailable as exc:
        log.warning("gallery catch-up after a notification failed: %s", exc)


def _count(row: tuple[Any, ...] | None) -> int:
    """The integer in a one-column row (0 for no row)."""
    return 0 if row is None else int(row[0])
