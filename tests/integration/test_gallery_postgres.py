"""Two real servers on one real PostgreSQL: an enrolment through one is found through the other
within 1 s; a PostgreSQL restart under a light identify load is survived (identify keeps answering
from the index, writes answer 503 with the reason, both servers reconnect by themselves)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Running, start_server, stop_server
from tests.integration.test_gallery_api import AUTH, R, W, files, people
from tests.pg_server import PgServer


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    server = PgServer()  # this module's own: the restart test stops it
    server.start()
    yield server
    server.stop("immediate")
    server.remove()


@pytest.fixture(scope="module")
def pair(models_dir: Path, pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Running]]:
    url = pg.new_database()
    servers = [
        start_server(
            models_dir, tmp_path_factory.mktemp(f"pg-server-{i}"), {**AUTH, "gallery": {"store": url}}
        )
        for i in range(2)
    ]
    yield servers
    for s in servers:
        stop_server(s)


def embedding(c: httpx.Client, image: Path) -> list[float]:
    r = c.post("/v1/embed", files=files(image))
    assert r.status_code == 200, r.text
    return list(r.json()["results"][0]["faces"][0]["embedding"])


def found(c: httpx.Client, emb: list[float]) -> str | None:
    r = c.post("/v1/identify/embeddings", json={"embeddings": [emb], "k": 1})
    assert r.status_code == 200, r.text
    matches = r.json()["results"][0]["matches"]
    return str(matches[0]["subject"]) if matches else None


def test_enrolled_through_one_server_found_through_the_other_within_1s(
    pair: list[Running], lfw_dir: Path
) -> None:
    a, b = (httpx.Client(base_url=s.url, timeout=60, headers=W) for s in pair)
    who = people(lfw_dir, 2, 2)
    probes = {name: embedding(b, paths[1]) for name, paths in who.items()}
    for name, paths in who.items():
        assert a.post("/v1/subjects", json={"id": name, "name": name}).status_code == 201
        r = a.post(f"/v1/subjects/{name}/faces", files=files(paths[0]))
        assert r.status_code == 201, r.text
        t0 = time.monotonic()
        while found(b, probes[name]) != name:
            assert time.monotonic() - t0 < 1.0, f"{name} not found through the other server within 1 s"
            time.sleep(0.02)
    assert b.delete(f"/v1/subjects/{name}").status_code == 200  # and the other way round
    t0 = time.monotonic()
    while found(a, probes[name]) == name:
        assert time.monotonic() - t0 < 1.0
        time.sleep(0.02)


def test_a_postgres_restart_under_load_is_survived(pair: list[Running], pg: PgServer, lfw_dir: Path) -> None:
    a, b = (httpx.Client(base_url=s.url, timeout=60, headers=W) for s in pair)
    (name, paths), (late, late_paths) = list(people(lfw_dir, 4, 2).items())[2:]
    assert a.post("/v1/subjects", json={"id": name, "name": name}).status_code == 201
    assert a.post(f"/v1/subjects/{name}/faces", files=files(paths[0])).status_code == 201
    probe = embedding(b, paths[1])
    answers: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load() -> None:  # ~20 identifications a second on each server
        clients = [httpx.Client(base_url=s.url, timeout=10, headers=R) for s in pair]
        while not stop.is_set():
            for c in clients:
                r = c.post("/v1/identify/embeddings", json={"embeddings": [probe], "k": 1})
                ok = r.status_code == 200 and r.json()["results"][0]["matches"]
                answers.append(
                    (r.status_code, r.json()["results"][0]["matches"][0]["subject"] if ok else None)
                )
            time.sleep(0.05)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        time.sleep(0.5)
        pg.stop("fast")
        time.sleep(0.5)
        r = a.post("/v1/subjects", json={"id": late, "name": late})
        assert r.status_code == 503 and "unreachable" in r.json()["error"]["message"], r.text
        during = len(answers)
        time.sleep(1.0)
        assert len(answers) > during  # identify kept answering while PostgreSQL was down
        pg.start()
        t0 = time.monotonic()
        while a.post("/v1/subjects", json={"id": late, "name": late}).status_code == 503:
            assert time.monotonic() - t0 < 10, "server A did not reconnect within 10 s"
            time.sleep(0.1)
        reconnect_s = time.monotonic() - t0
        assert b.post(f"/v1/subjects/{late}/faces", files=files(late_paths[0])).status_code == 201
        late_probe = embedding(a, late_paths[1])
        t0 = time.monotonic()
        while found(a, late_probe) != late:
            assert time.monotonic() - t0 < 1.0
            time.sleep(0.02)
    finally:
        stop.set()
        loader.join()
    assert answers and all(status == 200 and who == name for status, who in answers), set(answers)
    print(
        f"identify answers during the restart: {len(answers)}, all 200; writes back after {reconnect_s:.2f} s"
    )
