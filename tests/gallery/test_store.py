"""The store, on both backends: schema versions, one transaction per write, reads beside an open
write, the change log. SQLite-only and PostgreSQL-only behaviour is tested at the end."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import psycopg
import pytest

from facepipe.errors import ConfigError, Conflict
from facepipe.gallery import writes
from facepipe.gallery.backends import open_store
from facepipe.gallery.schema import SCHEMA_VERSION
from facepipe.gallery.sqlite_store import SqliteStore
from facepipe.gallery.store import NewFace, Tx

MODEL = ("m", "1")


def face(seed: int, sha: str = "", crop: bytes | None = b"png") -> NewFace:
    v = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return NewFace(v / np.linalg.norm(v), sha or f"sha{seed}", crop, {"score": 0.9})


def schema_version(url: str, set_to: int | None = None) -> int:
    """The version the database itself records (read, or overwritten, behind the store's back)."""
    if url.startswith("sqlite:///"):
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        if set_to is not None:
            db.execute(f"PRAGMA user_version = {set_to}")
            db.commit()
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    with psycopg.connect(url, autocommit=True) as pg:
        if set_to is not None:
            pg.execute("UPDATE facepipe_schema SET version = %s", (set_to,))
        return int(pg.execute("SELECT version FROM facepipe_schema").fetchone()[0])  # type: ignore[index]


def test_schema_is_versioned(store_url: str, tmp_path: Path) -> None:
    open_store(store_url, tmp_path).close()
    assert schema_version(store_url) == SCHEMA_VERSION
    open_store(store_url, tmp_path).close()  # reopening migrates nothing and keeps the version
    assert schema_version(store_url) == SCHEMA_VERSION


def test_a_newer_schema_is_refused(store_url: str, tmp_path: Path) -> None:
    open_store(store_url, tmp_path).close()
    schema_version(store_url, SCHEMA_VERSION + 1)
    with pytest.raises(ConfigError, match="newer than this facepipe"):
        open_store(store_url, tmp_path)


def test_subjects_and_faces_round_trip_and_cascade(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url, tmp_path)
    store.write(lambda tx: writes.insert_subject(tx, "ann", "Ann", {"team": "a"}))
    recs = store.write(lambda tx: [writes.insert_face(tx, "ann", MODEL, face(i)) for i in range(3)])
    assert [r.id for r in recs] == [1, 2, 3]
    assert store.subject("ann").faces == 3  # type: ignore[union-attr]
    assert store.subject("ann").metadata == {"team": "a"}  # type: ignore[union-attr]
    assert store.face(2).quality == {"score": 0.9}  # type: ignore[union-attr]
    assert store.crop(1) == b"png"
    ids, owners, vecs = next(store.embeddings(MODEL))
    assert ids.tolist() == [1, 2, 3] and owners == ["ann"] * 3
    assert np.allclose(vecs[1], face(1).embedding)
    assert [len(c[0]) for c in store.embeddings(MODEL, chunk=2)] == [2, 1]
    assert store.face_by_image("ann", "sha1", MODEL) is not None
    assert store.face_by_image("ann", "sha1", ("m", "2")) is None
    assert store.write(lambda tx: writes.delete_subject(tx, "ann")) == [1, 2, 3]
    assert store.face(1) is None and store.subject("ann") is None
    store.close()


def test_a_duplicate_subject_is_a_conflict(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url, tmp_path)
    store.write(lambda tx: writes.insert_subject(tx, "ann", "Ann", {}))
    with pytest.raises(Conflict):
        store.write(lambda tx: writes.insert_subject(tx, "ann", "Again", {}))
    assert store.name("ann") == "Ann" and store.last_change() == 1  # the failed write left nothing
    store.write(lambda tx: writes.insert_subject(tx, "bob", "Bob", {}))  # and the store still writes
    store.close()


def test_a_failed_write_leaves_nothing(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url, tmp_path)
    store.write(lambda tx: writes.insert_subject(tx, "ann", "Ann", {}))

    def half(tx: Tx) -> None:
        writes.insert_face(tx, "ann", MODEL, face(1))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.write(half)
    assert store.faces_of("ann") == [] and store.last_change() == 1
    store.close()


def test_reads_do_not_wait_for_an_open_write(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url, tmp_path)
    store.write(lambda tx: writes.insert_subject(tx, "ann", "Ann", {}))
    inside, release = threading.Event(), threading.Event()

    def slow(tx: Tx) -> None:
        writes.insert_subject(tx, "bob", "Bob", {})
        inside.set()
        release.wait(5)

    writer = threading.Thread(target=store.write, args=(slow,))
    writer.start()
    assert inside.wait(5)
    subjects, total = store.subjects(0, 10)  # answered at once, without the uncommitted row
    assert [s.id for s in subjects] == ["ann"] and total == 1
    release.set()
    writer.join()
    assert store.subjects(0, 10)[1] == 2
    store.close()


def test_the_change_log_records_every_change_in_order(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url, tmp_path)
    store.write(lambda tx: writes.insert_subject(tx, "ann", "Ann", {}))
    rec = store.write(lambda tx: writes.insert_face(tx, "ann", MODEL, face(1)))
    store.write(lambda tx: writes.update_subject(tx, "ann", "Anne", {}))
    store.write(lambda tx: writes.delete_face(tx, rec.id))
    assert store.changes_since(0) == [
        (1, "subject", "ann"),
        (2, "face", "1"),
        (3, "subject", "ann"),
        (4, "face", "1"),
    ]
    assert store.changes_since(2) == store.changes_since(0)[2:]
    assert (store.oldest_change(), store.last_change()) == (1, 4)
    assert store.names() == {"ann": "Anne"} and store.face_vector(rec.id) is None
    store.close()


def test_stale_lists_faces_of_other_models(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url, tmp_path)
    store.write(lambda tx: writes.insert_subject(tx, "ann", "Ann", {}))
    store.write(lambda tx: writes.insert_face(tx, "ann", ("m", "0"), face(1)))
    store.write(lambda tx: writes.insert_face(tx, "ann", MODEL, face(2)))
    assert store.model_counts() == {("m", "0"): 1, MODEL: 1}
    assert store.stale(MODEL, 10) == [(1, b"png")]
    store.write(lambda tx: writes.set_embedding(tx, 1, MODEL, face(3).embedding))
    assert store.stale(MODEL, 10) == []
    store.close()


# -- SQLite only ---------------------------------------------------------------------------------


def test_sqlite_is_wal_with_secure_delete(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "g.db")
    assert sqlite3.connect(tmp_path / "g.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.rows("PRAGMA secure_delete") == [(1,)]
    store.close()


def test_a_relative_sqlite_url_is_under_the_data_directory(tmp_path: Path) -> None:
    open_store("sqlite:///sub/g.db", tmp_path).close()
    assert (tmp_path / "sub" / "g.db").is_file()
    with pytest.raises(ConfigError, match=r"gallery\.store"):
        open_store("mysql://x", tmp_path)


def _open(path: str) -> None:
    SqliteStore(Path(path)).close()


def test_several_processes_opening_a_new_file_migrate_it_once(tmp_path: Path) -> None:
    import multiprocessing as mp

    with mp.get_context("fork").Pool(8) as pool:
        pool.map(_open, [str(tmp_path / "g.db")] * 32, chunksize=1)
    assert sqlite3.connect(tmp_path / "g.db").execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_subjects_search_by_id_or_name_pages_and_counts_only_matches(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url, tmp_path)
    for sid, name in [("ann", "Ann Lee"), ("bob", "Bob"), ("c_1", "Leo 100%"), ("d", "Dee")]:
        store.write(lambda tx, sid=sid, name=name: writes.insert_subject(tx, sid, name, {}))
    assert store.subjects(0, 10, "LEE")[1] == 1  # case-insensitive, names
    found, total = store.subjects(0, 1, "le")
    assert [s.id for s in found] == ["ann"] and total == 2  # one page, every match counted
    assert [s.id for s in store.subjects(0, 10, "_")[0]] == ["c_1"]  # LIKE wildcards are literal
    assert [s.id for s in store.subjects(0, 10, "%")[0]] == ["c_1"]
    assert store.subjects(0, 10, "zzz") == ([], 0)
