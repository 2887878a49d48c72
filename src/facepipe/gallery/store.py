"""The gallery's durable store: subjects, their faces and a change log, behind one interface.

Two backends implement it: ``SqliteStore`` (one file, WAL) and ``PostgresStore`` (psycopg 3), with one
schema (``schema.py``) and every statement written once: the reads here, the writes in ``writes.py``.
Writes go through ``Store.write`` (the caller serialises them: ``Gallery`` runs them on its single
writer thread), each call one transaction committed durably before it returns, with an entry per
change in the ``changes`` table in the same transaction: every server's index follows that log. Reads
never wait on the writer.

Deletes erase: a transaction that deleted a face or subject sets ``Tx.erased``, and the backend then
removes the deleted bytes from its files as far as it can (each backend's ``erase``; docs/gallery.md).
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from facepipe.errors import Conflict
from facepipe.gallery.records import DEFAULT, FaceRecord, NewFace, Subject, split_key, subject_key
from facepipe.gallery.schema import SCHEMA_VERSION, Dialect, spell

T = TypeVar("T")
FACE_COLUMNS = "id, subject_id, model, model_version, image_sha256, quality, created, crop IS NOT NULL"
__all__ = ["SCHEMA_VERSION", "Duplicate", "FaceRecord", "NewFace", "Store", "Subject", "Tx"]

log = logging.getLogger(__name__)


class Duplicate(Conflict):
    """A row with this key exists already (the backend's integrity error, in one vocabulary)."""


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def execute(self, sql: Any, args: Any = ...) -> Any: ...


@dataclass(slots=True)
class Tx:
    """One write transaction: statements use ``?`` placeholders whatever the backend."""

    db: Connection
    dialect: Dialect
    integrity: type[Exception]
    erased: bool = False
    vector_dim: int | None = None  # gallery.index: pgvector: face_vectors follows faces of this size

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        try:
            cur: Cursor = self.db.execute(spell(sql, self.dialect), tuple(args))
        except self.integrity as exc:
            raise Duplicate(str(exc).splitlines()[0]) from None
        return cur


def _face(row: Sequence[Any]) -> FaceRecord:
    fid, key, model, version, sha, quality, created, has_crop = row
    col, sid = split_key(key)
    return FaceRecord(int(fid), sid, model, version, sha, json.loads(quality), created, bool(has_crop), col)


def _subject(row: Sequence[Any]) -> Subject:
    key, name, metadata, created, faces = row
    col, sid = split_key(key)
    try:
        meta = json.loads(metadata)
    except (ValueError, RecursionError):  # one bad record must not break listing for everyone
        log.warning("subject %r: stored metadata is unreadable; answered as {}", sid)
        meta = {}
    return Subject(sid, name, meta if isinstance(meta, dict) else {}, created, int(faces), col)


def _like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (with ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _prefix(collection: str) -> str:
    """What every subject key of ``collection`` starts with."""
    return subject_key(collection, "")


IN_COLLECTION = "JOIN subjects s ON s.id = f.subject_id WHERE s.collection = ?"


def vector_text(emb: np.ndarray) -> str:
    """``emb`` in pgvector's text form, ``[x,y,...]`` (float32 values printed exactly)."""
    return "[" + ",".join(map(repr, np.asarray(emb, np.float32).tolist())) + "]"


class Store(ABC):
    """What the gallery needs of a durable store; the SQL is here, the connections in the backends."""

    dialect: Dialect

    @abstractmethod
    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one read (``?`` placeholders), on a connection that never waits on the writer."""

    @abstractmethod
    def write(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` in one transaction (with the change log pruned) and commit it durably."""

    @abstractmethod
    def close(self) -> None: ...

    def follow(self, wake: Callable[[], None]) -> None:  # noqa: B027 - a backend may not notify
        """Call ``wake`` whenever another process may have changed the store (default: never; the
        gallery then follows the log only before each search)."""

    def available(self) -> bool:
        """False while the store is known to be unreachable (searches then skip catching up rather
        than wait on a connection attempt)."""
        return True

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        rows = self.rows(sql, args)
        return rows[0] if rows else None

    # -- reads: never wait on the writer ------------------------------------------------------

    def subject(self, sid: str) -> Subject | None:
        row = self._one(
            "SELECT s.id, s.name, s.metadata, s.created, (SELECT COUNT(*) FROM faces f WHERE f.subject_id"
            " = s.id) FROM subjects s WHERE s.id = ?",
            (sid,),
        )
        return _subject(row) if row else None

    def subjects(
        self, offset: int, limit: int, search: str = "", collection: str = DEFAULT
    ) -> tuple[list[Subject], int]:
        """A page of ``collection``'s subjects in creation order; ``search``: only those whose id or
        name contains it (case-insensitive for ASCII), ``total`` counting only those."""
        where, args = " WHERE s.collection = ?", tuple[str, ...]((collection,))
        if search:
            pattern = "%" + _like(search) + "%"
            like = "LIKE LOWER(?) ESCAPE '\\'"
            where += f" AND (LOWER(s.id) {like} OR LOWER(s.name) {like})"
            args = (collection, _like(_prefix(collection)) + pattern, pattern)
        rows = self.rows(
            "SELECT s.id, s.name, s.metadata, s.created, (SELECT COUNT(*) FROM faces f WHERE f.subject_id"
            f" = s.id) FROM subjects s{where} ORDER BY s.created, s.id LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        total = int(self._one(f"SELECT COUNT(*) FROM subjects s{where}", args)[0])
        return [_subject(r) for r in rows], total

    def subjects_after(self, after: str, limit: int, collection: str | None = None) -> list[Subject]:
        """Up to ``limit`` subjects (of ``collection``; None: of all) with keys above ``after``, by
        key (a cursor that survives writes)."""
        where, args = ("", ()) if collection is None else (" AND collection = ?", (collection,))
        rows = self.rows(
            f"SELECT id, name, metadata, created, 0 FROM subjects WHERE id > ?{where} ORDER BY id LIMIT ?",
            (after, *args, limit),
        )
        return [_subject(r) for r in rows]

    def dump_faces(
        self, after: int, limit: int, collection: str | None = None
    ) -> list[tuple[FaceRecord, bytes, bytes | None]]:
        """Up to ``limit`` (face, float32 embedding bytes, crop) with ids above ``after``, by id
        (of ``collection``'s subjects; None: of all)."""
        cols = ", ".join("f." + c for c in FACE_COLUMNS.split(", "))
        where, args = ("WHERE", ()) if collection is None else (IN_COLLECTION + " AND", (collection,))
        rows = self.rows(
            f"SELECT {cols}, f.embedding, f.crop FROM faces f {where} f.id > ? ORDER BY f.id LIMIT ?",
            (*args, after, limit),
        )
        return [(_face(r[:8]), bytes(r[8]), None if r[9] is None else bytes(r[9])) for r in rows]

    def count_after(self, subject: str, face: int, collection: str | None = None) -> int:
        """Subjects with keys above ``subject`` plus faces with ids above ``face`` (of ``collection``)."""
        if collection is None:
            sql = "SELECT (SELECT COUNT(*) FROM subjects WHERE id > ?) + (SELECT COUNT(*) FROM faces"
            sql += " WHERE id > ?)"
            return int(self._one(sql, (subject, face))[0])
        n = self._one(
            "SELECT (SELECT COUNT(*) FROM subjects WHERE id > ? AND collection = ?) + (SELECT COUNT(*) FROM"
            f" faces f {IN_COLLECTION} AND f.id > ?)",
            (subject, collection, collection, face),
        )
        return int(n[0])

    def faces_of(self, sid: str) -> list[FaceRecord]:
        return [
            _face(r)
            for r in self.rows(f"SELECT {FACE_COLUMNS} FROM faces WHERE subject_id = ? ORDER BY id", (sid,))
        ]

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
        rows = self.rows("SELECT model, model_version, COUNT(*) FROM faces GROUP BY model, model_version")
        return {(m, v): int(n) for m, v, n in rows}

    def embeddings(
        self, model: tuple[str, str], chunk: int = 65536, collection: str | None = DEFAULT
    ) -> Iterator[tuple[np.ndarray, list[str], np.ndarray]]:
        """(face ids, subject keys, embeddings) of ``collection``'s faces (None: of every one)
        embedded by ``model``, in chunks of ids (each chunk one read: no statement stays open between
        chunks)."""
        after = 0
        where, args = ("WHERE", ()) if collection is None else (IN_COLLECTION + " AND", (collection,))
        while rows := self.rows(
            f"SELECT f.id, f.subject_id, f.embedding FROM faces f {where} f.model = ? AND"
            " f.model_version = ? AND f.id > ? ORDER BY f.id LIMIT ?",
            (*args, *model, after, chunk),
        ):
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            vecs = np.frombuffer(b"".join(bytes(r[2]) for r in rows), np.float32).reshape(len(rows), -1)
            after = int(ids[-1])
            yield ids, [r[1] for r in rows], vecs

    def last_change(self) -> int:
        return int(self._one("SELECT COALESCE(MAX(seq), 0) FROM changes")[0])

    def changes_since(self, seq: int, kind: str | None = None) -> list[tuple[int, str, str]]:
        """The (seq, kind, ref) changes after ``seq`` (only of ``kind``), oldest first (one indexed
        query; searches call it before every search)."""
        where, args = ("", (seq,)) if kind is None else (" AND kind = ?", (seq, kind))
        rows = self.rows(f"SELECT seq, kind, ref FROM changes WHERE seq > ?{where} ORDER BY seq", args)
        return [(int(s), str(k), str(r)) for s, k, r in rows]

    def oldest_change(self) -> int:
        return int(self._one("SELECT COALESCE(MIN(seq), 0) FROM changes")[0])

    def names(self, collection: str = DEFAULT) -> dict[str, str]:
        """Subject key -> name of ``collection`` (what the index needs; no face counts)."""
        rows = self.rows("SELECT id, name FROM subjects WHERE collection = ?", (collection,))
        return {str(i): str(n) for i, n in rows}

    def name(self, sid: str) -> str | None:
        row = self._one("SELECT name FROM subjects WHERE id = ?", (sid,))
        return None if row is None else str(row[0])

    def face_vector(self, fid: int) -> tuple[str, tuple[str, str], np.ndarray] | None:
        """(subject key, model, embedding) of one face, or None if it is gone."""
        row = self._one("SELECT subject_id, model, model_version, embedding FROM faces WHERE id = ?", (fid,))
        if row is None:
            return None
        return row[0], (row[1], row[2]), np.frombuffer(bytes(row[3]), np.float32).copy()

    def stale(self, model: tuple[str, str], limit: int, after: int = 0) -> list[tuple[int, bytes | None]]:
        """Up to ``limit`` (face id, crop), ids above ``after``, of faces not embedded by ``model``."""
        rows = self.rows(
            "SELECT id, crop FROM faces WHERE NOT (model = ? AND model_version = ?) AND id > ? ORDER BY id"
            " LIMIT ?",
            (*model, after, limit),
        )
        return [(int(i), bytes(c) if c is not None else None) for i, c in rows]
