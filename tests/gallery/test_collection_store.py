"""Erasure of a whole collection: once the delete returns, its crops and embeddings are in no file of
the SQLite data directory, and (with ``pg_erase: vacuum_full``) in no PostgreSQL table file; what
other collections hold stays."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg

from facepipe.gallery.collections import Collections
from facepipe.gallery.gallery import Gallery
from facepipe.gallery.pg_store import PostgresStore
from facepipe.gallery.sqlite_store import SqliteStore
from facepipe.gallery.store import NewFace, Store
from tests.gallery.erasure import DIM, files_holding, marked_face, needles
from tests.pg_server import PgServer


async def _fill(cols: Collections, faces: list[NewFace]) -> None:
    """Two subjects with three faces in collection "gone", one face in the default collection."""
    await cols.create("gone", None, None)
    gone, kept = cols.gallery("gone"), cols.gallery("default")
    for sid in ("ann", "bob"):
        await gone.create_subject(sid, sid.title(), {})
    await gone.add_faces("ann", faces[:2])
    await gone.add_faces("bob", faces[2:3])
    await kept.create_subject("ann", "Ann", {})
    await kept.add_faces("ann", faces[3:])


def _open(store: Store) -> Collections:
    default = Gallery(store, ("m", "1"), DIM)
    default.load()
    return Collections.open(default)


def test_sqlite_deleted_collection_leaves_no_bytes_in_any_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cols = _open(SqliteStore(data / "gallery.db"))
    faces = [marked_face(200 + i) for i in range(4)]

    async def run() -> None:
        await _fill(cols, faces)
        for face in faces:  # the scan does find what is stored
            assert all(files_holding(data, n) for n in needles(face))
        assert await cols.delete("gone") == (2, 3)

    asyncio.run(run())
    for face in faces[:3]:
        for needle in needles(face):
            assert files_holding(data, needle) == []
    assert all(files_holding(data, n) for n in needles(faces[3]))  # the default collection's face
    assert (data / "gallery.db-wal").stat().st_size == 0
    cols.close()


def test_postgres_deleted_collection_leaves_no_bytes_in_the_table_files(postgres: PgServer) -> None:
    """As for faces and subjects: VACUUM FULL rewrites the tables; WAL segments are not erased
    (docs/gallery.md)."""
    url = postgres.new_database()
    cols = _open(PostgresStore(url, full_vacuum=True))
    faces = [marked_face(300 + i) for i in range(4)]

    def checkpoint() -> None:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("CHECKPOINT")

    async def run() -> None:
        await _fill(cols, faces)
        checkpoint()
        for face in faces:  # the scan does find what is stored
            assert all(files_holding(postgres.data / "base", n) for n in needles(face))
        assert await cols.delete("gone") == (2, 3)

    asyncio.run(run())
    checkpoint()
    for face in faces[:3]:
        for needle in needles(face):
            assert files_holding(postgres.data, needle, skip=("pg_wal",)) == []
    assert all(files_holding(postgres.data / "base", n) for n in needles(faces[3]))
    cols.close()
