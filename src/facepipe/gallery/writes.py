"""The statements that change a gallery, each inside one ``Store.write`` transaction (``Tx``), with a
``changes`` entry for every change in the same transaction (what every server's index follows).
Written once for both backends (``?`` placeholders, spelled per dialect by ``Tx``)."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from facepipe.gallery.records import DEFAULT, FaceRecord, NewFace, Subject, split_key, subject_key
from facepipe.gallery.store import Tx, vector_text

KEEP_CHANGES = 100_000


def _blob(emb: np.ndarray) -> bytes:
    return np.ascontiguousarray(emb, np.float32).tobytes()


def prune(tx: Tx) -> None:
    tx.execute("DELETE FROM changes WHERE seq <= (SELECT MAX(seq) FROM changes) - ?", (KEEP_CHANGES,))


def log(tx: Tx, kind: str, ref: str | int) -> None:
    """Record a change (``subject`` or ``face``) in the same transaction as the change itself."""
    tx.execute("INSERT INTO changes (kind, ref) VALUES (?, ?)", (kind, str(ref)))


def insert_subject(
    tx: Tx,
    sid: str,
    name: str,
    metadata: dict[str, Any],
    created: float | None = None,
    collection: str = DEFAULT,
) -> Subject:
    now = time.time() if created is None else created
    key = subject_key(collection, sid)
    tx.execute(
        "INSERT INTO subjects (id, name, metadata, created, collection) VALUES (?, ?, ?, ?, ?)",
        (key, name, json.dumps(metadata), now, collection),
    )
    log(tx, "subject", key)
    return Subject(sid, name, metadata, now, 0, collection)


def has_subject(tx: Tx, sid: str) -> bool:
    return tx.execute("SELECT 1 FROM subjects WHERE id = ?", (sid,)).fetchone() is not None


def update_subject(tx: Tx, sid: str, name: str, metadata: dict[str, Any]) -> None:
    tx.execute("UPDATE subjects SET name = ?, metadata = ? WHERE id = ?", (name, json.dumps(metadata), sid))
    log(tx, "subject", sid)


def delete_subject(tx: Tx, sid: str) -> list[int]:
    ids = [int(r[0]) for r in tx.execute("SELECT id FROM faces WHERE subject_id = ?", (sid,)).fetchall()]
    tx.execute("DELETE FROM subjects WHERE id = ?", (sid,))
    for fid in ids:
        log(tx, "face", fid)
    log(tx, "subject", sid)
    tx.erased = True
    return ids


def insert_face(
    tx: Tx, sid: str, model: tuple[str, str], face: NewFace, created: float | None = None
) -> FaceRecord:
    now = time.time() if created is None else created
    fid = int(
        tx.execute(
            "INSERT INTO faces (subject_id, model, model_version, embedding, image_sha256, crop, quality,"
            " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                sid,
                *model,
                _blob(face.embedding),
                face.image_sha256,
                face.crop_png,
                json.dumps(face.quality),
                now,
            ),
        ).fetchone()[0]
    )
    log(tx, "face", fid)
    put_vector(tx, fid, face.embedding)
    col, external = split_key(sid)
    crop = face.crop_png is not None
    return FaceRecord(fid, external, *model, face.image_sha256, face.quality, now, crop, col)


def has_face(tx: Tx, sid: str, sha: str, model: tuple[str, str]) -> bool:
    """Whether ``sid`` has a face of this image embedded by ``model`` (how enrolment dedups)."""
    sql = "SELECT 1 FROM faces WHERE subject_id = ? AND image_sha256 = ? AND model = ?"
    sql += " AND model_version = ?"
    return tx.execute(sql, (sid, sha, *model)).fetchone() is not None


def delete_face(tx: Tx, fid: int) -> bool:
    gone = tx.execute("DELETE FROM faces WHERE id = ?", (fid,)).rowcount > 0
    if gone:
        log(tx, "face", fid)
        tx.erased = True
    return gone


def set_embedding(tx: Tx, fid: int, model: tuple[str, str], emb: np.ndarray) -> None:
    tx.execute(
        "UPDATE faces SET embedding = ?, model = ?, model_version = ? WHERE id = ?",
        (_blob(emb), *model, fid),
    )
    log(tx, "face", fid)
    put_vector(tx, fid, emb)


def put_vector(tx: Tx, fid: int, emb: np.ndarray) -> None:
    """pgvector's copy of a face's embedding (``gallery.index: pgvector``), in the same transaction."""
    if tx.vector_dim is not None and emb.shape == (tx.vector_dim,):
        tx.execute(
            "INSERT INTO face_vectors (face_id, embedding) VALUES (?, ?::vector)"
            " ON CONFLICT (face_id) DO UPDATE SET embedding = EXCLUDED.embedding",
            (fid, vector_text(emb)),
        )
