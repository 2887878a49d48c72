"""The SQLite store: schema versions, one transaction per write, reads beside an open write."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from facepipe.errors import ConfigError
from facepipe.gallery.store import SCHEMA_VERSION, NewFace, Store

MODEL = ("m", "1")


def face(seed: int, sha: str = "", crop: bytes | None = b"png") -> NewFace:
    v = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return NewFace(v / np.linalg.norm(v), sha or f"sha{seed}", crop, {"score": 0.9})


def test_schema_is_versioned_and_wal(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    db = sqlite3.connect(tmp_path / "g.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    Store(tmp_path / "g.db").close()  # reopening migrates nothing and keeps the version


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "g.db").close()
    db = sqlite3.connect(tmp_path / "g.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    with pytest.raises(ConfigError, match="newer than this facepipe"):
        Store(tmp_path / "g.db")


def test_subjects_and_faces_round_trip_and_cascade(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    store.write(lambda db: Store.insert_subject(db, "ann", "Ann", {"team": "a"}))
    recs = store.write(lambda db: [Store.insert_face(db, "ann", MODEL, face(i)) for i in range(3)])
    assert [r.id for r in recs] == [1, 2, 3]
    assert store.subject("ann").faces == 3  # type: ignore[union-attr]
    assert store.face(2).quality == {"score": 0.9}  # type: ignore[union-attr]
    assert store.crop(1) == b"png"
    ids, owners, vecs = next(store.embeddings(MODEL))
    assert ids.tolist() == [1, 2, 3] and owners == ["ann"] * 3
    assert np.allclose(vecs[1], face(1).embedding)
    assert store.face_by_image("ann", "sha1", MODEL) is not None
    assert store.face_by_image("ann", "sha1", ("m", "2")) is None
    assert store.write(lambda db: Store.delete_subject(db, "ann")) == [1, 2, 3]
    assert store.face(1) is None and store.subject("ann") is None


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    store.write(lambda db: Store.insert_subject(db, "ann", "Ann", {}))

    def half(db: sqlite3.Connection) -> None:
        Store.insert_face(db, "ann", MODEL, face(1))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.write(half)
    assert store.faces_of("ann") == []


def test_reads_do_not_wait_for_an_open_write(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    store.write(lambda db: Store.insert_subject(db, "ann", "Ann", {}))
    inside, release = threading.Event(), threading.Event()

    def slow(db: sqlite3.Connection) -> None:
        Store.insert_subject(db, "bob", "Bob", {})
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


def test_stale_lists_faces_of_other_models(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    store.write(lambda db: Store.insert_subject(db, "ann", "Ann", {}))
    store.write(lambda db: Store.insert_face(db, "ann", ("m", "0"), face(1)))
    store.write(lambda db: Store.insert_face(db, "ann", MODEL, face(2)))
    assert store.model_counts() == {("m", "0"): 1, MODEL: 1}
    assert store.stale(MODEL, 10) == [(1, b"png")]
    store.write(lambda db: Store.set_embedding(db, 1, MODEL, face(3).embedding))
    assert store.stale(MODEL, 10) == []


def _open(path: str) -> None:
    Store(Path(path)).close()


def test_several_processes_opening_a_new_file_migrate_it_once(tmp_path: Path) -> None:
    import multiprocessing as mp

    with mp.get_context("fork").Pool(8) as pool:
        pool.map(_open, [str(tmp_path / "g.db")] * 32, chunksize=1)
    assert sqlite3.connect(tmp_path / "g.db").execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_subjects_search_by_id_or_name_pages_and_counts_only_matches(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    for sid, name in [("ann", "Ann Lee"), ("bob", "Bob"), ("c_1", "Leo 100%"), ("d", "Dee")]:
        store.write(lambda db, sid=sid, name=name: Store.insert_subject(db, sid, name, {}))
    assert store.subjects(0, 10, "LEE")[1] == 1  # case-insensitive, names
    found, total = store.subjects(0, 1, "le")
    assert [s.id for s in found] == ["ann"] and total == 2  # one page, every match counted
    assert [s.id for s in store.subjects(0, 10, "_")[0]] == ["c_1"]  # LIKE wildcards are literal
    assert [s.id for s in store.subjects(0, 10, "%")[0]] == ["c_1"]
    assert store.subjects(0, 10, "zzz") == ([], 0)
