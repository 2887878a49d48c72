"""The gallery API against a real server: CRUD, enrolment, identification, keys, bad input,
durability under kill -9, and store/index consistency under concurrent clients."""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from tests.integration.conftest import Running, start_server, stop_server

ADMIN, READ = "admin-key-0123456789", "read-key-0123456789ab"
AUTH = {"auth": {"api_keys": [ADMIN], "read_keys": [READ]}}
W, R = {"x-api-key": ADMIN}, {"x-api-key": READ}


def people(lfw_dir: Path, n: int, per: int) -> dict[str, list[Path]]:
    found = {}
    for d in sorted((lfw_dir / "images").iterdir()):
        files = sorted(d.glob("*.jpg"))
        if len(files) >= per:
            found[d.name] = files[:per]
        if len(found) == n:
            break
    return found


def files(*paths: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


def blank() -> bytes:
    return cv2.imencode(".png", np.full((120, 120, 3), 128, np.uint8))[1].tobytes()


@pytest.fixture(scope="module")
def gserver(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_server(models_dir, tmp_path_factory.mktemp("gallery"), AUTH)
    yield running
    stop_server(running)


def test_enrol_and_identify_real_faces(gserver: Running, lfw_dir: Path) -> None:
    c = httpx.Client(base_url=gserver.url, timeout=60)
    who = people(lfw_dir, 3, 3)
    for name, paths in who.items():
        r = c.post("/v1/subjects", json={"id": name, "name": name.replace("_", " ")}, headers=W)
        assert r.status_code == 201, r.text
        r = c.post(f"/v1/subjects/{name}/faces", files=files(*paths[:2]), headers=W)
        assert r.status_code == 201, r.text
        faces = r.json()["faces"]
        assert [f["created"] for f in faces] == [True, True] and faces[0]["quality"]["score"] > 0.9
    again = c.post(f"/v1/subjects/{name}/faces", files=files(paths[0]), headers=W).json()
    assert again["faces"][0]["created"] is False  # same image, same face: enrolment is idempotent
    for name, paths in who.items():
        r = c.post("/v1/identify", files=files(paths[2]), data={"k": "2"}, headers=R)
        assert r.status_code == 200, r.text
        matches = r.json()["results"][0]["faces"][0]["matches"]
        assert matches[0]["subject"] == name and matches[0]["match"] is True
        assert len(matches) == 2 and matches[1]["similarity"] < matches[0]["similarity"]
    listed = c.get("/v1/subjects", params={"limit": 2}, headers=R).json()
    assert listed["total"] >= 3 and len(listed["subjects"]) == 2
    fid = c.get(f"/v1/subjects/{name}/faces", headers=R).json()["faces"][0]["id"]
    crop = c.get(f"/v1/faces/{fid}/crop", headers=R)
    assert crop.headers["content-type"] == "image/png"
    assert cv2.imdecode(np.frombuffer(crop.content, np.uint8), cv2.IMREAD_COLOR).shape == (112, 112, 3)
    assert c.patch(f"/v1/subjects/{name}", json={"name": "Renamed"}, headers=W).json()["name"] == "Renamed"
    assert c.delete(f"/v1/subjects/{name}", headers=W).json() == {"deleted": name, "faces": 2}
    r = c.post("/v1/identify", files=files(who[name][2]), headers=R).json()
    assert all(m["subject"] != name for m in r["results"][0]["faces"][0]["matches"])


def test_identify_embeddings(gserver: Running, lfw_dir: Path) -> None:
    c = httpx.Client(base_url=gserver.url, timeout=60)
    path = people(lfw_dir, 1, 1)
    ((name, (img,)),) = path.items()
    c.post("/v1/subjects", json={"id": "emb-" + name, "name": name}, headers=W)
    c.post(f"/v1/subjects/emb-{name}/faces", files=files(img), headers=W)
    emb = c.post("/v1/embed", files=files(img)).json()["results"][0]["faces"][0]["embedding"]
    model = c.post("/v1/embed", files=files(img)).json()["model"]
    r = c.post("/v1/identify/embeddings", json={"embeddings": [emb], "model": model}, headers=R)
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["matches"][0]["subject"] == "emb-" + name
    assert r.json()["results"][0]["matches"][0]["similarity"] > 0.999
    r = c.post(
        "/v1/identify/embeddings", json={"embeddings": [emb], "model": {**model, "version": "9"}}, headers=R
    )
    assert r.status_code == 409 and "cannot be searched" in r.json()["error"]["message"]


def test_keys_are_required(gserver: Running) -> None:
    c = httpx.Client(base_url=gserver.url, timeout=30)
    assert c.post("/v1/subjects", json={"name": "x"}).status_code == 401
    r = c.post("/v1/subjects", json={"name": "x"}, headers=R)
    assert r.status_code == 403 and "read-only" in r.text
    assert c.get("/v1/subjects").status_code == 401
    assert c.get("/v1/subjects", headers={"x-api-key": "wrong-key-0123456789"}).status_code == 401
    assert c.get("/v1/subjects", headers=R).status_code == 200


def test_no_key_configured_refuses_writes_saying_how(server: Running) -> None:
    r = httpx.post(server.url + "/v1/subjects", json={"name": "x"}, headers=W, timeout=30)
    assert r.status_code == 403 and "auth.api_keys" in r.json()["error"]["message"]
    assert httpx.get(server.url + "/v1/subjects", timeout=30).status_code == 200  # reads stay open


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "text"),
    [
        ("POST", "/v1/subjects", {"content": b"{nope"}, 400, "not valid JSON"),
        ("POST", "/v1/subjects", {"json": {"name": ""}}, 400, "name"),
        ("POST", "/v1/subjects", {"json": {"name": "a", "metadata": [1]}}, 400, "metadata"),
        ("POST", "/v1/subjects", {"json": {"id": "a b", "name": "a"}}, 400, "id"),
        ("GET", "/v1/subjects", {"params": {"limit": "0"}}, 400, "limit"),
        ("GET", "/v1/subjects/nobody", {}, 404, "no subject 'nobody'"),
        ("PATCH", "/v1/subjects/nobody", {"json": {"name": "x"}}, 404, "nobody"),
        ("DELETE", "/v1/subjects/nobody", {}, 404, "nobody"),
        ("POST", "/v1/subjects/nobody/faces", {"json": {}}, 404, "nobody"),
        ("GET", "/v1/subjects/nobody/faces", {}, 404, "nobody"),
        ("GET", "/v1/faces/abc", {}, 400, "face id"),
        ("GET", "/v1/faces/999999", {}, 404, "no face 999999"),
        ("DELETE", "/v1/faces/999999", {}, 404, "no face"),
        ("GET", "/v1/faces/999999/crop", {}, 404, "no face"),
        ("POST", "/v1/identify", {"json": {}}, 400, "no image"),
        ("POST", "/v1/identify", {"json": {"images": ["%%%"]}}, 400, "image[0]"),
        ("POST", "/v1/identify", {"json": {"images": [], "k": 0}}, 400, "k"),
        ("POST", "/v1/identify/embeddings", {"json": {"embeddings": [[1, 2]]}}, 400, "embeddings have 192"),
        ("POST", "/v1/identify/embeddings", {"json": {"embeddings": "x"}}, 400, "embeddings"),
        ("POST", "/v1/identify/embeddings", {"json": {"embeddings": [["a"]]}}, 400, "embeddings[0]"),
    ],
)
def test_bad_input(gserver: Running, method: str, path: str, kwargs: dict, status: int, text: str) -> None:
    r = httpx.request(method, gserver.url + path, headers=W, timeout=30, **kwargs)
    assert r.status_code == status, r.text
    assert text in r.json()["error"]["message"]
    assert httpx.get(gserver.url + "/readyz", timeout=5).status_code == 200


def test_enrol_policies(gserver: Running, lfw_dir: Path, photos_dir: Path) -> None:
    c = httpx.Client(base_url=gserver.url, timeout=60)
    c.post("/v1/subjects", json={"id": "policy", "name": "p"}, headers=W)
    face = next(iter(people(lfw_dir, 1, 1).values()))[0]
    mixed = [*files(face), ("image", ("blank.png", blank(), "image/png"))]
    r = c.post("/v1/subjects/policy/faces", files=mixed, headers=W)
    assert r.status_code == 400 and "image[1]: no face found" in r.text
    assert c.get("/v1/subjects/policy", headers=R).json()["faces"] == 0  # nothing half-enrolled
    r = c.post("/v1/subjects/policy/faces", files=mixed, data={"on_no_face": "skip"}, headers=W)
    assert r.status_code == 201 and r.json()["skipped"] == [{"image": 1, "reason": "no face found"}]
    group = max(photos_dir.glob("*.jpg"), key=lambda p: p.stat().st_size)
    r = c.post("/v1/subjects/policy/faces", files=files(group), data={"on_many_faces": "nope"}, headers=W)
    assert r.status_code == 400 and "on_many_faces" in r.text
    corrupt = [("image", ("bad.jpg", b"\xff\xd8\xff\xe0garbage", "image/jpeg"))]
    r = c.post("/v1/subjects/policy/faces", files=corrupt, headers=W)
    assert r.status_code == 400 and "image[0]" in r.text


def test_enrolment_survives_kill_9(models_dir: Path, lfw_dir: Path, tmp_path: Path) -> None:
    ((name, paths),) = people(lfw_dir, 1, 2).items()
    running = start_server(models_dir, tmp_path, AUTH)
    try:
        c = httpx.Client(base_url=running.url, timeout=60)
        c.post("/v1/subjects", json={"id": name, "name": name}, headers=W)
        assert c.post(f"/v1/subjects/{name}/faces", files=files(paths[0]), headers=W).status_code == 201
    finally:
        running.proc.send_signal(signal.SIGKILL)
        running.proc.wait(30)
    running = start_server(models_dir, tmp_path, AUTH)  # same data directory
    try:
        r = httpx.post(running.url + "/v1/identify", files=files(paths[1]), headers=R, timeout=60)
        assert r.json()["results"][0]["faces"][0]["matches"][0]["subject"] == name
    finally:
        stop_server(running)


def test_concurrent_clients_keep_store_and_index_in_step(gserver: Running, lfw_dir: Path) -> None:
    images = [p for ps in people(lfw_dir, 40, 1).values() for p in ps]
    c = httpx.Client(base_url=gserver.url, timeout=60)
    for i in range(4):
        c.post("/v1/subjects", json={"id": f"storm{i}", "name": f"storm {i}"}, headers=W)
    embs = {}
    for p in images:
        r = c.post("/v1/embed", files=files(p), data={"aligned": "true"})
        embs[p.name] = r.json()["results"][0]["embedding"]
    rng = random.Random(0)

    def enrol(i: int, p: Path) -> int:
        r = httpx.post(
            f"{gserver.url}/v1/subjects/storm{i % 4}/faces",
            files=files(p),
            data={"aligned": "true"},
            headers=W,
            timeout=60,
        )
        assert r.status_code == 201, r.text
        fid = r.json()["faces"][0]["id"]
        if rng.random() < 0.4:
            assert httpx.delete(f"{gserver.url}/v1/faces/{fid}", headers=W, timeout=60).status_code == 200
        return fid

    def identify(p: Path) -> int:
        return httpx.post(
            f"{gserver.url}/v1/identify/embeddings",
            json={"embeddings": [embs[p.name]]},
            headers=R,
            timeout=60,
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        writes = [pool.submit(enrol, i, p) for i, p in enumerate(images)]
        reads = [pool.submit(identify, p) for p in images]
        fids = [w.result() for w in writes]
        assert {r.result() for r in reads} == {200}
    live = {
        f["id"]: f["image_sha256"]
        for i in range(4)
        for f in c.get(f"/v1/subjects/storm{i}/faces", headers=R).json()["faces"]
    }
    for p, fid in zip(images, fids, strict=True):
        top = c.post("/v1/identify/embeddings", json={"embeddings": [embs[p.name]]}, headers=R).json()
        best = top["results"][0]["matches"][0]
        if fid in live:
            assert best["face"] == fid and best["similarity"] > 0.999
        else:
            assert best["face"] not in fids or best["face"] in live
