"""PostgreSQL only, on a real server: LISTEN/NOTIFY wakes every follower at once, the change log is
the truth when a notification is missed, and a lost server is survived (reads from the index, writes
503, reconnection by itself)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import psycopg
import pytest

from facepipe.errors import ConfigError, StoreUnavailable
from facepipe.gallery import writes
from facepipe.gallery.collections import Collections
from facepipe.gallery.gallery import Gallery
from facepipe.gallery.pg_store import PostgresStore
from facepipe.gallery.store import NewFace, Store
from tests.gallery.erasure import files_holding, marked_face, needles
from tests.pg_server import PgServer

MODEL, DIM = ("m", "1"), 16


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def within(seconds: float, check: Callable[[], bool]) -> float:
    """How long ``check`` took to become true (fails the test after ``seconds``)."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < seconds, f"not within {seconds} s"
        time.sleep(0.01)
    return time.monotonic() - t0


def test_a_notification_wakes_another_server_at_once(postgres: PgServer) -> None:
    url = postgres.new_database()
    a = Gallery.open(PostgresStore(url), MODEL, DIM)
    b = Gallery.open(PostgresStore(url), MODEL, DIM, "ivf")

    async def run() -> None:
        await a.create_subject("ann", "Ann", {})
        rows = await a.add_faces("ann", [NewFace(vec(1), "sha1", None)])
        within(1.0, lambda: b.faces_count() == 1)  # b never searched: the listener woke it
        await a.delete_face(rows[0][0].id)
        within(1.0, lambda: b.faces_count() == 0)

    asyncio.run(run())
    a.close()
    b.close()


def test_a_missed_notification_is_caught_on_the_next_read(postgres: PgServer) -> None:
    url = postgres.new_database()
    store = PostgresStore(url)
    g = Gallery.open(store, MODEL, DIM)
    assert store.listening.wait(5)
    with psycopg.connect(url, autocommit=True) as db, db.transaction():  # a change with no NOTIFY
        db.execute("INSERT INTO subjects (id, name, created) VALUES ('ann', 'Ann', 0)")
        db.execute(
            "INSERT INTO faces (subject_id, model, model_version, embedding, image_sha256, created)"
            " VALUES ('ann', %s, %s, %s, 'x', 0)",
            (*MODEL, vec(1).tobytes()),
        )
        db.execute("INSERT INTO changes (kind, ref) VALUES ('subject', 'ann'), ('face', '1')")
    time.sleep(0.2)
    assert g.faces_count() == 0  # nobody told it
    assert g.identify(vec(1)[None], 1)[0][0].name == "Ann"  # the read followed the log
    g.close()


def test_writers_of_several_servers_commit_the_log_in_order(postgres: PgServer) -> None:
    url = postgres.new_database()
    stores = [PostgresStore(url) for _ in range(3)]
    stores[0].write(lambda tx: writes.insert_subject(tx, "ann", "Ann", {}))

    def enrol(store: Store, seed: int) -> None:
        for i in range(20):
            store.write(
                lambda tx, i=i: writes.insert_face(tx, "ann", MODEL, NewFace(vec(seed + i), "x", None))
            )

    threads = [threading.Thread(target=enrol, args=(s, 100 * n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [seq for seq, _, _ in stores[1].changes_since(0)]
    assert seqs == list(range(1, 62))  # one subject + 60 faces, no gap
    for s in stores:
        s.close()


@pytest.fixture
def own_postgres() -> Iterator[PgServer]:
    """A server of this test's own, to stop and start without disturbing the session's."""
    server = PgServer()
    server.start()
    yield server
    server.stop("immediate")
    server.remove()


def test_a_lost_server_is_survived_and_rejoined(own_postgres: PgServer) -> None:
    url = own_postgres.new_database()
    g = Gallery.open(PostgresStore(url), MODEL, DIM)

    async def enrol(sid: str, seed: int) -> None:
        await g.create_subject(sid, sid.title(), {})
        await g.add_faces(sid, [NewFace(vec(seed), f"sha{seed}", None)])

    asyncio.run(enrol("ann", 1))
    own_postgres.stop("fast")
    for _ in range(20):  # from the index, store down, without waiting on connection attempts
        t0 = time.monotonic()
        assert g.identify(vec(1)[None], 1)[0][0].subject_id == "ann"
        assert time.monotonic() - t0 < 0.5
        time.sleep(0.05)
    with pytest.raises(StoreUnavailable, match="unreachable") as err:
        asyncio.run(enrol("bob", 2))
    assert err.value.http_status == 503
    own_postgres.start()

    def written() -> bool:
        try:
            asyncio.run(g.create_subject("bob", "Bob", {}))
        except StoreUnavailable:
            return False
        return True

    took = within(10.0, written)  # no restart of the gallery: it reconnected by itself
    asyncio.run(g.add_faces("bob", [NewFace(vec(2), "sha2", None)]))  # the next write just works
    assert g.identify(vec(2)[None], 1)[0][0].subject_id == "bob"
    other = PostgresStore(url)  # another server writes; the listener (reconnected too) hears it
    other.write(lambda tx: writes.insert_subject(tx, "cy", "Cy", {}))
    other.write(lambda tx: writes.insert_face(tx, "cy", MODEL, NewFace(vec(3), "sha3", None)))
    within(1.0, lambda: g.faces_count() == 3)
    other.close()
    g.close()
    assert took < 10


def _checkpoint(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CHECKPOINT")  # every dirty page from shared buffers into the table files


def test_with_vacuum_full_a_deleted_face_leaves_no_bytes_in_the_table_files(postgres: PgServer) -> None:
    """What PostgreSQL can guarantee: with ``pg_erase: vacuum_full`` the deleted crop and embedding are
    in no table file (base/) once the delete returns. WAL segments (pg_wal/) still hold them until
    they are recycled and overwritten: that is documented (docs/gallery.md), not erased."""
    url = postgres.new_database()
    g = Gallery.open(PostgresStore(url, full_vacuum=True), MODEL, DIM)
    faces = [marked_face(100 + i) for i in range(3)]

    async def run() -> None:
        await g.create_subject("ann", "Ann", {})
        await g.create_subject("bob", "Bob", {})
        ann = await g.add_faces("ann", faces[:2])
        await g.add_faces("bob", faces[2:])
        _checkpoint(url)
        for face in faces:  # the scan finds what is stored
            assert all(files_holding(postgres.data / "base", n) for n in needles(face))
        await g.delete_face(ann[0][0].id)
        await g.delete_subject("bob")

    asyncio.run(run())
    _checkpoint(url)
    for face in (faces[0], faces[2]):
        for needle in needles(face):
            assert files_holding(postgres.data, needle, skip=("pg_wal",)) == []
    assert all(files_holding(postgres.data / "base", n) for n in needles(faces[1]))
    g.close()


def test_an_unreachable_server_at_start_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(
        ConfigError, match=r"gallery\.store: gallery store 127\.0\.0\.1:1/x unreachable"
    ) as err:
        PostgresStore("postgresql://postgres:secret@127.0.0.1:1/x", connect_timeout_s=1)
    assert "secret" not in str(err.value)  # the URL's password is never in a message


def test_notifications_keep_other_servers_collections_in_step(postgres: PgServer) -> None:
    """A collection made, filled and deleted on one server is opened, indexed and dropped on another
    by the listener alone (the other never searches nor asks for it meanwhile)."""
    url = postgres.new_database()

    def server() -> Collections:
        default = Gallery(PostgresStore(url), MODEL, DIM)
        default.load()
        return Collections.open(default)

    one, two = server(), server()

    def faces_on_two(name: str) -> int:
        return two.gallery(name).faces_count() if name in two.names() else -1

    async def run() -> None:
        await one.create("site", None, None)
        within(1.0, lambda: "site" in two.names())
        g = one.gallery("site")
        await g.create_subject("ann", "Ann", {})
        await g.add_faces("ann", [NewFace(vec(7), "sha7", None)])
        within(1.0, lambda: faces_on_two("site") == 1)
        assert faces_on_two("default") == 0
        await one.delete("site")
        within(1.0, lambda: "site" not in two.names())

    asyncio.run(run())
    one.close()
    two.close()
