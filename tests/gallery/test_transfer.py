"""Store-to-store migration, on both backends: in batches, stopped halfway, resumed from its cursor,
complete and without duplicates; re-running it changes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepipe.errors import InvalidInput
from facepipe.gallery import collection_store, writes
from facepipe.gallery.backends import open_store
from facepipe.gallery.store import NewFace
from facepipe.gallery.transfer import Cursor, migrate, remaining
from tests.gallery.test_archive import (
    MODEL,
    collection_snapshot,
    fill,
    fill_collection,
    other_backend,
    snapshot,
)


def face(seed: int) -> NewFace:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return NewFace(v / np.linalg.norm(v), f"late{seed}", b"crop", {})


class Stop(Exception):
    pass


def test_an_interrupted_migration_resumes_and_completes(
    store_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = open_store(store_url, tmp_path)
    target_url = other_backend(store_url, request, tmp_path)
    target = open_store(target_url, tmp_path)
    fill(source, subjects=10, per=5)  # 10 subjects + 50 faces: 2 subject batches, 7 face batches
    path = tmp_path / "cursor"
    moved: list[int] = []

    def stop_after_four(n: int) -> None:
        moved.append(n)
        if len(moved) == 4:  # the second face batch is committed; the cursor says so
            raise Stop

    cur = Cursor.load(path, store_url, target_url)
    assert remaining(source, cur) == 60
    with pytest.raises(Stop):
        migrate(source, target, cur, path, batch=8, progress=stop_after_four)
    assert target.subjects(0, 100)[1] == 10 and sum(target.model_counts().values()) == 16

    cur = Cursor.load(path, store_url, target_url)
    assert (cur.subjects_after, cur.faces_after, cur.done) == ("p0-09", 16, False)
    assert remaining(source, cur) == 34
    resumed: list[int] = []
    tally = migrate(source, target, cur, path, batch=8, progress=resumed.append)
    assert sum(resumed) == 34 and (tally.faces, tally.faces_kept) == (34, 0)  # nothing moved twice
    assert snapshot(target) == snapshot(source)
    assert Cursor.load(path, store_url, target_url).done

    again = migrate(source, target, Cursor(store_url, target_url), path, batch=8)  # from scratch
    assert (again.subjects, again.faces, again.subjects_kept, again.faces_kept) == (0, 0, 10, 50)
    assert snapshot(target) == snapshot(source)
    source.close()
    target.close()


def test_a_batch_committed_but_not_recorded_is_not_copied_twice(tmp_path: Path) -> None:
    """A crash between a batch's commit and the cursor's save: the re-run applies it again, which
    changes nothing."""
    source, target = open_store("sqlite:///a.db", tmp_path), open_store("sqlite:///b.db", tmp_path)
    fill(source, subjects=3, per=4)
    path = tmp_path / "cursor"
    migrate(source, target, Cursor("a", "b"), path, batch=5)
    Cursor("a", "b", subjects_after="p0-01", faces_after=5).save(path)  # as if saves were lost
    tally = migrate(source, target, Cursor.load(path, "a", "b"), path, batch=5)
    assert (tally.subjects, tally.faces, tally.subjects_kept, tally.faces_kept) == (0, 0, 1, 7)
    assert snapshot(target) == snapshot(source)


def test_faces_of_subjects_made_during_the_migration_come_along(tmp_path: Path) -> None:
    source, target = open_store("sqlite:///a.db", tmp_path), open_store("sqlite:///b.db", tmp_path)
    fill(source, subjects=2, per=2)
    calls: list[int] = []

    def late_subject(n: int) -> None:
        calls.append(n)
        if len(calls) == 2:  # the subjects are copied, a face batch too: one with an id below the cursor
            source.write(lambda tx: writes.insert_subject(tx, "a-late", "Late", {}))
            source.write(lambda tx: writes.insert_face(tx, "a-late", MODEL, face(1)))

    migrate(source, target, Cursor("a", "b"), tmp_path / "cursor", batch=2, progress=late_subject)
    assert target.subject("a-late") is not None and len(target.faces_of("a-late")) == 1
    assert snapshot(target) == snapshot(source)


def test_a_cursor_of_other_stores_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "cursor"
    Cursor("x", "y", subjects_after="z", faces_after=9).save(path)
    assert Cursor.load(path, "a", "b") == Cursor("a", "b")
    assert Cursor.load(path, "x", "y").faces_after == 9
    path.write_text("{not json")
    with pytest.raises(InvalidInput, match="not a migration cursor"):
        Cursor.load(path, "x", "y")


def test_a_migration_carries_collections_with_their_keys(
    store_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = open_store(store_url, tmp_path)
    fill(source, subjects=2, per=1)
    fill_collection(source, "shop", 2)
    target_url = other_backend(store_url, request, tmp_path)
    target = open_store(target_url, tmp_path)
    tally = migrate(source, target, Cursor(store_url, target_url), tmp_path / "cursor", batch=2)
    assert (tally.subjects, tally.faces) == (5, 5)
    assert collection_store.collections(target) == collection_store.collections(source)
    assert collection_store.keys(target) == collection_store.keys(source)  # the same keys still work
    assert collection_snapshot(target, "shop") == collection_snapshot(source, "shop")
    assert snapshot(target) == snapshot(source)
    source.close()
    target.close()
