"""The gallery: store and index in step behind one writer; identification; model versions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facepipe.errors import Conflict, InvalidInput, NotFound
from facepipe.gallery import writes
from facepipe.gallery.backends import open_store
from facepipe.gallery.gallery import Gallery
from facepipe.gallery.store import NewFace

MODEL, DIM = ("m", "1"), 16


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def new(seed: int) -> NewFace:
    return NewFace(vec(seed), f"sha{seed}", None)


@pytest.fixture
def gallery(store_url: str, tmp_path: Path) -> Iterator[Gallery]:
    g = Gallery.open(open_store(store_url, tmp_path), MODEL, DIM)
    yield g
    g.close()


def test_enrol_identify_delete(gallery: Gallery) -> None:
    async def run() -> None:
        await gallery.create_subject("ann", "Ann", {})
        await gallery.create_subject("bob", "Bob", {})
        rows = await gallery.add_faces("ann", [new(1), new(2)])
        await gallery.add_faces("bob", [new(3)])
        matches = gallery.identify(np.stack([vec(2), vec(3)]), 2)
        assert [m.subject_id for m in matches[0]] == ["ann", "bob"]
        assert matches[0][0].similarity == pytest.approx(1.0, abs=1e-5)
        assert matches[1][0].subject_id == "bob"
        await gallery.delete_face(rows[1][0].id)
        assert gallery.identify(vec(2)[None], 1)[0][0].face_id == rows[0][0].id
        assert await gallery.delete_subject("bob") == 1
        assert [m.subject_id for m in gallery.identify(vec(3)[None], 5)[0]] == ["ann"]

    asyncio.run(run())


def test_the_same_image_is_enrolled_once(gallery: Gallery) -> None:
    async def run() -> None:
        await gallery.create_subject("ann", "Ann", {})
        first = await gallery.add_faces("ann", [new(1), new(1)])
        again = await gallery.add_faces("ann", [new(1)])
        assert [c for _, c in first] == [True, False] and not again[0][1]
        assert first[0][0].id == again[0][0].id
        assert gallery.faces_count() == 1

    asyncio.run(run())


def test_errors_name_the_problem(gallery: Gallery) -> None:
    async def run() -> None:
        await gallery.create_subject("ann", "Ann", {})
        with pytest.raises(Conflict, match="already exists"):
            await gallery.create_subject("ann", "Again", {})
        with pytest.raises(InvalidInput, match="id"):
            await gallery.create_subject("no spaces/here", "X", {})
        with pytest.raises(NotFound, match="no subject 'zed'"):
            await gallery.add_faces("zed", [new(1)])
        with pytest.raises(NotFound, match="no face 99"):
            await gallery.delete_face(99)
        with pytest.raises(InvalidInput, match="shape"):
            await gallery.add_faces("ann", [NewFace(np.ones(3, np.float32), "s", None)])
        with pytest.raises(InvalidInput, match="16 values"):
            gallery.identify(np.ones((1, 3), np.float32), 1)

    asyncio.run(run())


def test_a_restart_rebuilds_the_index_from_the_store(store_url: str, tmp_path: Path) -> None:
    async def enrol() -> int:
        g = Gallery.open(open_store(store_url, tmp_path), MODEL, DIM)
        await g.create_subject("ann", "Ann", {})
        rows = await g.add_faces("ann", [new(1)])
        g.close()
        return rows[0][0].id

    fid = asyncio.run(enrol())
    for kind in ("exact", "ivf", "hnsw"):
        g = Gallery.open(open_store(store_url, tmp_path), MODEL, DIM, kind)  # type: ignore[arg-type]
        m = g.identify(vec(1)[None], 1)[0][0]
        assert (m.subject_id, m.face_id, m.name) == ("ann", fid, "Ann")
        g.close()


def test_faces_of_another_model_version_block_search(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url, tmp_path)
    store.write(lambda db: writes.insert_subject(db, "ann", "Ann", {}))
    store.write(lambda db: writes.insert_face(db, "ann", ("m", "0"), new(1)))
    store.close()
    g = Gallery.open(open_store(store_url, tmp_path), MODEL, DIM)
    with pytest.raises(Conflict, match="reembed"):
        g.check_model()
    with pytest.raises(Conflict, match="m/2"):
        g.check_model(("m", "2"))
    g.close()


def test_concurrent_writers_keep_store_and_index_in_step(gallery: Gallery) -> None:
    async def run() -> None:
        await asyncio.gather(*(gallery.create_subject(f"s{i}", f"S{i}", {}) for i in range(8)))
        adds = [gallery.add_faces(f"s{i % 8}", [new(i)]) for i in range(64)]
        rows = [r for batch in await asyncio.gather(*adds) for r in batch]
        await asyncio.gather(*(gallery.delete_face(r.id) for r, _ in rows[::2]))
        await gallery.delete_subject("s7")

    asyncio.run(run())
    stored = {int(i) for ids, _, _ in gallery.store.embeddings(MODEL) for i in ids}
    indexed, _ = gallery.index.live()  # type: ignore[union-attr]
    assert stored == set(indexed.tolist()) and len(stored) == gallery.faces_count()


def test_two_processes_on_one_store_stay_in_step(store_url: str, tmp_path: Path) -> None:
    a = Gallery.open(open_store(store_url, tmp_path), MODEL, DIM)
    b = Gallery.open(
        open_store(store_url, tmp_path), MODEL, DIM, "ivf"
    )  # another process, another index kind

    async def run() -> None:
        await a.create_subject("ann", "Ann", {})
        rows = await a.add_faces("ann", [new(1), new(2)])
        assert b.identify(vec(1)[None], 1)[0][0].subject_id == "ann"  # enrolled by a, found by b
        await a.update_subject("ann", "Anne", None)
        await a.delete_face(rows[0][0].id)
        match = b.identify(vec(1)[None], 1)[0][0]
        assert (match.name, match.face_id) == ("Anne", rows[1][0].id)
        await b.delete_subject("ann")
        assert a.identify(vec(2)[None], 1) == [[]]

    asyncio.run(run())
    a.close()
    b.close()
