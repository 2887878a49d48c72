"""The gallery's durable store: subjects and their faces in one SQLite file (WAL).

Writes go through ``Store.write`` on one connection (the caller serialises them: ``Gallery`` runs them
on its single writer thread), each call one transaction, committed with ``synchronous=FULL`` before
it returns: an acknowledged enrolment survives ``kill -9`` and power loss. Reads use a connection per
thread and never wait on the writer (WAL).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from facepipe.errors import ConfigError

T = TypeVar("T")
log = logging.getLogger(__name__)

# Migration i takes the schema from version i to i + 1 (PRAGMA user_version holds the version).
MIGRATIONS = [
    """
    CREATE TABLE subjects (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL
    );
    CREATE TABLE faces (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        model_version TEXT NOT NULL,
        embedding BLOB NOT NULL,
        image_sha256 TEXT NOT NULL,
        crop BLOB,
        quality TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL
    );
    CREATE INDEX faces_subject ON faces(subject_id);
    CREATE INDEX faces_model ON faces(model, model_version);
    CREATE INDEX faces_image ON faces(subject_id, image_sha256);
    """,
    # v2: a change log, so that several server processes keep their in-memory indexes in step
    """
    CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, ref TEXT NOT NULL);
    """,
]
KEEP_CHANGES = 100_000
SCHEMA_VERSION = len(MIGRATIONS)
FACE_COLUMNS = "id, subject_id, model, model_version, image_sha256, quality, created, crop IS NOT NULL"


@dataclass(slots=True)
class Subject:
    id: str
    name: str
    metadata: dict[str, Any]
    created: float
    faces: int = 0


@dataclass(slots=True)
class FaceRecord:
    id: int
    subject_id: str
    model: str
    model_version: str
    image_sha256: str
    quality: dict[str, Any]
    created: float
    has_crop: bool


@dataclass(slots=True)
class NewFace:
    embedding: np.ndarray  # float32, L2-normalised
    image_sha256: str
    crop_png: bytes | None
    quality: dict[str, Any] = field(default_factory=dict)


def _face(row: tuple[Any, ...]) -> FaceRecord:
    fid, sid, model, version, sha, quality, created, has_crop = row
    return FaceRecord(fid, sid, model, version, sha, json.loads(quality), created, bool(has_crop))


def _subject(row: tuple[Any, ...]) -> Subject:
    sid, name, metadata, created, faces = row
    try:
        meta = json.loads(metadata)
    except (ValueError, RecursionError):  # one bad record must not break listing for everyone
        log.warning("subject %r: stored metadata is unreadable; answered as {}", sid)
        meta = {}
    return Subject(sid, name, meta if isinstance(meta, dict) else {}, created, faces)


class Store:
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
                for statement in filter(str.strip, MIGRATIONS[i].split(";")):
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

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        """The first row (or None). Reads every row: a half-read statement would keep its read
        transaction, and with it an old snapshot, open on this thread's connection."""
        rows = self._reader().execute(sql, args).fetchall()
        return rows[0] if rows else None

    # -- writes: one transaction per call -------------------------------------------------------

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._writer
        db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(db)
            db.execute("DELETE FROM changes WHERE seq <= (SELECT MAX(seq) FROM changes) - ?", (KEEP_CHANGES,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return out

    @staticmethod
    def log(db: sqlite3.Connection, kind: str, ref: str | int) -> None:
        """Record a change (``subject`` or ``face``) in the same transaction as the change itself."""
        db.execute("INSERT INTO changes (kind, ref) VALUES (?, ?)", (kind, str(ref)))

    @staticmethod
    def insert_subject(db: sqlite3.Connection, sid: str, name: str, metadata: dict[str, Any]) -> Subject:
        now = time.time()
        db.execute(
            "INSERT INTO subjects (id, name, metadata, created) VALUES (?, ?, ?, ?)",
            (sid, name, json.dumps(metadata), now),
        )
        Store.log(db, "subject", sid)
        return Subject(sid, name, metadata, now)

    @staticmethod
    def has_subject(db: sqlite3.Connection, sid: str) -> bool:
        return db.execute("SELECT 1 FROM subjects WHERE id = ?", (sid,)).fetchone() is not None

    @staticmethod
    def update_subject(db: sqlite3.Connection, sid: str, name: str, metadata: dict[str, Any]) -> None:
        db.execute(
            "UPDATE subjects SET name = ?, metadata = ? WHERE id = ?", (name, json.dumps(metadata), sid)
        )
        Store.log(db, "subject", sid)

    @staticmethod
    def delete_subject(db: sqlite3.Connection, sid: str) -> list[int]:
        ids = [r[0] for r in db.execute("SELECT id FROM faces WHERE subject_id = ?", (sid,))]
        db.execute("DELETE FROM subjects WHERE id = ?", (sid,))
        for fid in ids:
            Store.log(db, "face", fid)
        Store.log(db, "subject", sid)
        return ids

    @staticmethod
    def insert_face(db: sqlite3.Connection, sid: str, model: tuple[str, str], face: NewFace) -> FaceRecord:
        now = time.time()
        blob = np.ascontiguousarray(face.embedding, np.float32).tobytes()
        cur = db.execute(
            "INSERT INTO faces (subject_id, model, model_version, embedding, image_sha256, crop, quality,"
            " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (sid, *model, blob, face.image_sha256, face.crop_png, json.dumps(face.quality), now),
        )
        fid = int(cur.lastrowid or 0)
        Store.log(db, "face", fid)
        return FaceRecord(fid, sid, *model, face.image_sha256, face.quality, now, face.crop_png is not None)

    @staticmethod
    def delete_face(db: sqlite3.Connection, fid: int) -> bool:
        gone = db.execute("DELETE FROM faces WHERE id = ?", (fid,)).rowcount > 0
        if gone:
            Store.log(db, "face", fid)
        return gone

    @staticmethod
    def set_embedding(db: sqlite3.Connection, fid: int, model: tuple[str, str], emb: np.ndarray) -> None:
        blob = np.ascontiguousarray(emb, np.float32).tobytes()
        db.execute(
            "UPDATE faces SET embedding = ?, model = ?, model_version = ? WHERE id = ?", (blob, *model, fid)
        )
        Store.log(db, "face", fid)

    # -- reads: never wait on the writer ------------------------------------------------------

    def subject(self, sid: str) -> Subject | None:
        row = self._one(
            "SELECT s.id, s.name, s.metadata, s.created, (SELECT COUNT(*) FROM faces f WHERE f.subject_id"
            " = s.id) FROM subjects s WHERE s.id = ?",
            (sid,),
        )
        return _subject(row) if row else None

    def subjects(self, offset: int, limit: int) -> tuple[list[Subject], int]:
        db = self._reader()
        rows = db.execute(
            "SELECT s.id, s.name, s.metadata, s.created, (SELECT COUNT(*) FROM faces f WHERE f.subject_id"
            " = s.id) FROM subjects s ORDER BY s.created, s.id LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()
        total = int(self._one("SELECT COUNT(*) FROM subjects")[0])
        return [_subject(r) for r in rows], total

    def faces_of(self, sid: str) -> list[FaceRecord]:
        rows = (
            self._reader()
            .execute(f"SELECT {FACE_COLUMNS} FROM faces WHERE subject_id = ? ORDER BY id", (sid,))
            .fetchall()
        )
        return [_face(r) for r in rows]

    def face(self, fid: int) -> FaceRecord | None:
        row = self._one(f"SELECT {FACE_COLUMNS} FROM faces WHERE id = ?", (fid,))
        return _face(row) if row else None

    def face_by_image(self, sid: str, sha: str, model: tuple[str, str]) -> FaceRecord | None:
        row = self._one(
            f"SELECT {FACE_COLUMNS} FROM faces WHERE subject_id = ? AND image_sha256 = ? AND model = ?"
            " AND model_version = ?",
            (sid, sha, *model),
        )
        return _face(row) if row else None

    def crop(self, fid: int) -> bytes | None:
        row = self._one("SELECT crop FROM faces WHERE id = ?", (fid,))
        return bytes(row[0]) if row and row[0] is not None else None

    def model_counts(self) -> dict[tuple[str, str], int]:
        rows = (
            self._reader()
            .execute("SELECT model, model_version, COUNT(*) FROM faces GROUP BY 1, 2")
            .fetchall()
        )
        return {(m, v): int(n) for m, v, n in rows}

    def embeddings(
        self, model: tuple[str, str], chunk: int = 65536
    ) -> Iterator[tuple[np.ndarray, list[str], np.ndarray]]:
        """(face ids, subject ids, embeddings) of the faces embedded by ``model``, in chunks."""
        cur = self._reader().execute(
            "SELECT id, subject_id, embedding FROM faces WHERE model = ? AND model_version = ? ORDER BY id",
            model,
        )
        while rows := cur.fetchmany(chunk):
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            vecs = np.frombuffer(b"".join(r[2] for r in rows), np.float32).reshape(len(rows), -1)
            yield ids, [r[1] for r in rows], vecs

    def last_change(self) -> int:
        return int(self._one("SELECT COALESCE(MAX(seq), 0) FROM changes")[0])

    def changes_since(self, seq: int) -> list[tuple[int, str, str]]:
        """The (seq, kind, ref) changes after ``seq``, oldest first (one indexed query; searches
        call it before every search)."""
        rows = self._reader().execute("SELECT seq, kind, ref FROM changes WHERE seq > ? ORDER BY seq", (seq,))
        return [(int(s), str(k), str(r)) for s, k, r in rows.fetchall()]

    def oldest_change(self) -> int:
        return int(self._one("SELECT COALESCE(MIN(seq), 0) FROM changes")[0])

    def names(self) -> dict[str, str]:
        """Subject id -> name (what the index needs; no face counts)."""
        return {str(i): str(n) for i, n in self._reader().execute("SELECT id, name FROM subjects").fetchall()}

    def name(self, sid: str) -> str | None:
        row = self._one("SELECT name FROM subjects WHERE id = ?", (sid,))
        return None if row is None else str(row[0])

    def face_vector(self, fid: int) -> tuple[str, tuple[str, str], np.ndarray] | None:
        """(subject, model, embedding) of one face, or None if it is gone."""
        row = self._one("SELECT subject_id, model, model_version, embedding FROM faces WHERE id = ?", (fid,))
        return None if row is None else (row[0], (row[1], row[2]), np.frombuffer(row[3], np.float32).copy())

    def stale(self, model: tuple[str, str], limit: int, after: int = 0) -> list[tuple[int, bytes | None]]:
        """Up to ``limit`` (face id, crop), ids above ``after``, of faces not embedded by ``model``."""
        rows = self._reader().execute(
            "SELECT id, crop FROM faces WHERE NOT (model = ? AND model_version = ?) AND id > ? ORDER BY id"
            " LIMIT ?",
            (*model, after, limit),
        )
        return [(int(i), bytes(c) if c is not None else None) for i, c in rows]
