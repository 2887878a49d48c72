"""SQLite erasure: after a delete returns, the face's crop and embedding are in no file of the data
directory (``secure_delete`` zeroes the freed cells and pages; a TRUNCATE checkpoint empties the WAL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from facepipe.gallery.gallery import Gallery
from facepipe.gallery.sqlite_store import SqliteStore
from tests.gallery.erasure import DIM, files_holding, marked_face, needles


def test_deleted_faces_and_subjects_leave_no_bytes_in_any_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    g = Gallery.open(SqliteStore(data / "gallery.db"), ("m", "1"), DIM)
    faces = [marked_face(i) for i in range(4)]

    async def run() -> None:
        await g.create_subject("ann", "Ann", {})
        await g.create_subject("bob", "Bob", {})
        ann = await g.add_faces("ann", faces[:3])
        await g.add_faces("bob", faces[3:])
        for face in faces:  # the scan does find what is stored (in the WAL or the database file)
            assert all(files_holding(data, n) for n in needles(face))
        await g.delete_face(ann[0][0].id)
        await g.delete_subject("bob")

    asyncio.run(run())
    for face in (faces[0], faces[3]):
        for needle in needles(face):
            assert files_holding(data, needle) == []
    for face in faces[1:3]:  # what was kept is still there (and still readable)
        assert all(files_holding(data, n) for n in needles(face))
    assert sorted(p.name for p in data.iterdir()) == ["gallery.db", "gallery.db-shm", "gallery.db-wal"]
    assert (data / "gallery.db-wal").stat().st_size == 0
    g.close()
