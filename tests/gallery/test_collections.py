"""Collections on both backends: each its own subjects, faces, index and threshold; the same subject id
in two collections; deletion of everything in one; a second process following creations and
deletions from the change log; keys kept as digests only."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facepipe.errors import Conflict, InvalidInput, NotFound
from facepipe.gallery import collection_store
from facepipe.gallery.backends import open_store
from facepipe.gallery.collections import Collections
from facepipe.gallery.gallery import Gallery
from facepipe.gallery.store import NewFace

MODEL, DIM = ("m", "1"), 8


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def face(seed: int) -> NewFace:
    return NewFace(vec(seed), f"sha{seed}", b"crop%d" % seed)


def open_collections(store_url: str, tmp_path: Path) -> Collections:
    default = Gallery(open_store(store_url, tmp_path), MODEL, DIM)
    default.load()
    return Collections.open(default)


@pytest.fixture
def cols(store_url: str, tmp_path: Path) -> Iterator[Collections]:
    c = open_collections(store_url, tmp_path)
    yield c
    c.close()


def test_collections_keep_their_own_subjects_faces_and_index(cols: Collections) -> None:
    async def run() -> None:
        made, keys = await cols.create("site-a", 0.5, "hnsw")
        assert made.threshold == 0.5 and set(keys) == {"admin", "read"}
        a, default = cols.gallery("site-a"), cols.gallery("default")
        assert a.kind == "hnsw" and a is not default
        for g, seed in ((default, 1), (a, 2)):  # the same subject id in two collections
            await g.create_subject("ann", f"Ann {seed}", {})
            await g.add_faces("ann", [face(seed)])
        assert default.subject("ann").name == "Ann 1" and a.subject("ann").name == "Ann 2"
        assert [m.subject_id for m in a.identify(vec(2)[None], 5)[0]] == ["ann"]
        assert a.identify(vec(1)[None], 5)[0][0].similarity < 0.99  # default's face is not in a
        assert default.identify(vec(1)[None], 5)[0][0].similarity > 0.99
        fid = a.faces_of("ann")[0].id
        assert a.face(fid).collection == "site-a"
        with pytest.raises(NotFound):
            default.face(fid)  # a face id of another collection is not there
        with pytest.raises(NotFound):
            await default.delete_face(fid)
        assert [s.id for s in a.subjects(0, 10, "an")[0]] == ["ann"]
        assert a.subjects(0, 10, "site")[1] == 0  # the search sees ids, not the store's keys
        assert cols.info("site-a").subjects == 1 and cols.info("default").faces == 1

    asyncio.run(run())


def test_deleting_a_collection_removes_everything_in_it_and_nothing_else(cols: Collections) -> None:
    async def run() -> None:
        _, keys = await cols.create("b", None, None)
        b = cols.gallery("b")
        await b.create_subject("x", "X", {})
        await b.add_faces("x", [face(3), face(4)])
        await cols.gallery("default").create_subject("x", "X", {})
        assert cols.key_role(keys["admin"]) == ("b", "admin")
        assert await cols.delete("b") == (1, 2)
        assert cols.key_role(keys["admin"]) is None and b.dropped and b.faces_count() == 0
        with pytest.raises(NotFound, match="no collection 'b'"):
            cols.gallery("b")
        with pytest.raises(NotFound):
            await b.create_subject("y", "Y", {})  # a request that still holds the old gallery
        assert cols.gallery("default").subject("x").name == "X"
        assert cols.store.dump_faces(0, 10) == []

    asyncio.run(run())


def test_names_thresholds_and_the_default_are_checked(cols: Collections) -> None:
    async def run() -> None:
        for bad in ("", "Upper", "a/b", "-x", "x" * 64):
            with pytest.raises(InvalidInput, match="collection"):
                await cols.create(bad, None, None)
        with pytest.raises(InvalidInput, match="index"):
            await cols.create("ok", None, "lsh")
        with pytest.raises(Conflict):
            await cols.create("default", None, None)
        await cols.create("ok", None, None)
        with pytest.raises(Conflict, match="already exists"):
            await cols.create("ok", None, None)
        await cols.set_threshold("ok", 0.3)
        assert cols.threshold("ok") == 0.3 and cols.threshold("default") is None
        with pytest.raises(InvalidInput):
            await cols.delete("default")
        with pytest.raises(NotFound):
            await cols.set_threshold("nope", 0.1)

    asyncio.run(run())


def test_a_second_process_follows_collections_from_the_log(store_url: str, tmp_path: Path) -> None:
    one, two = open_collections(store_url, tmp_path), open_collections(store_url, tmp_path)

    async def run() -> None:
        await one.create("c", 0.4, None)
        await one.gallery("c").create_subject("s", "S", {})
        await one.gallery("c").add_faces("s", [face(5)])
        c2 = two.gallery("c")  # unknown to two until it looks at the log
        assert c2.identify(vec(5)[None], 1)[0][0].subject_id == "s"
        assert two.threshold("c") == 0.4
        _, keys = await one.create("d", None, None)
        assert two.key_role(keys["read"]) == ("d", "read")  # a key made elsewhere: looked up in the log
        await one.set_threshold("c", 0.7)
        c2.identify(vec(5)[None], 1)  # a search in any collection passes collection news on
        assert two.threshold("c") == 0.7
        await one.delete("c")
        assert c2.identify(vec(5)[None], 1) == [[]]  # its next search catches the deletion up
        with pytest.raises(NotFound):
            two.gallery("c")

    asyncio.run(run())
    one.close()
    two.close()


def test_only_digests_of_keys_are_stored(cols: Collections) -> None:
    _, keys = asyncio.run(cols.create("k", None, None))
    stored = cols.store.rows("SELECT digest, role FROM collection_keys")
    assert sorted(r for _, r in stored) == ["admin", "read"]
    assert all(k not in str(stored) for k in keys.values())
    assert all(k.startswith(collection_store.KEY_PREFIX) and len(k) >= 32 for k in keys.values())
