"""/v1/collections over the real edges (HTTP and gRPC) and a real SQLite store: a server admin key
manages collections; a collection's key reads and writes its own collection only, and gets 403 on any
other (the default included), whether or not that collection exists."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from facepipe.api.auth import ApiKeys
from facepipe.edges import face_grpc
from facepipe.edges.observe import Edge
from facepipe.gallery.store import NewFace
from facepipe.protos import face_service_pb2 as pb
from facepipe.protos import face_service_pb2_grpc as pb_grpc
from tests.edges.conftest import ADMIN, DIM, App, make_app

READ = "read-key-0123456789ab"  # the config's read key: the default collection's
H = {"x-api-key": ADMIN}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[App]:
    a = make_app(tmp_path, ApiKeys([ADMIN.encode()], [READ.encode()]))
    yield a
    a.gallery.close()


def create(api: App, name: str, **extra: Any) -> dict[str, str]:
    r = api.client.post("/v1/collections", json={"name": name, **extra}, headers=H)
    assert r.status_code == 201, r.text
    return dict(r.json()["keys"])


def enrol(api: App, collection: str, sid: str, seed: int) -> int:
    """A face enrolled straight through the collection's gallery (this app has no detector)."""
    assert api.service is not None
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    g = api.service.collections.gallery(collection)
    rows = asyncio.run(g.add_faces(sid, [NewFace(v / np.linalg.norm(v), f"sha{seed}", b"png")]))
    return rows[0][0].id


def test_a_collection_key_can_neither_read_nor_write_another(api: App) -> None:
    a, b = create(api, "a"), create(api, "b")
    for name, key in (("a", a["admin"]), ("b", b["admin"])):
        r = api.client.post(
            f"/v1/collections/{name}/subjects", json={"id": "ann", "name": name}, headers={"x-api-key": key}
        )
        assert r.status_code == 201, r.text
    face_b = enrol(api, "b", "ann", 2)
    ka = {"x-api-key": a["admin"]}
    assert api.client.get("/v1/collections/a/subjects/ann", headers=ka).json()["name"] == "a"
    emb = {"embeddings": [[1.0] * DIM]}
    denied = [
        ("GET", "/v1/collections/b/subjects", None),
        ("GET", "/v1/collections/b/subjects/ann", None),
        ("PATCH", "/v1/collections/b/subjects/ann", {"name": "x"}),
        ("DELETE", "/v1/collections/b/subjects/ann", None),
        ("POST", "/v1/collections/b/subjects", {"id": "eve", "name": "Eve"}),
        ("GET", f"/v1/collections/b/faces/{face_b}", None),
        ("GET", f"/v1/collections/b/faces/{face_b}/crop", None),
        ("DELETE", f"/v1/collections/b/faces/{face_b}", None),
        ("POST", "/v1/collections/b/identify/embeddings", emb),
        ("GET", "/v1/collections/nowhere/subjects", None),  # 403, not 404: no existence oracle
        ("GET", "/v1/subjects", None),  # the default collection is another collection too
        ("POST", "/v1/identify/embeddings", emb),
        ("GET", "/v1/collections", None),  # managing collections: a server admin key only
        ("DELETE", "/v1/collections/b", None),
    ]
    for key in (a["admin"], a["read"]):
        for method, path, body in denied:
            r = api.client.request(method, path, json=body, headers={"x-api-key": key})
            assert r.status_code == 403, (key, method, path, r.text)
    assert api.client.get(f"/v1/collections/a/faces/{face_b}", headers=ka).status_code == 404
    assert api.client.get("/v1/collections/b/subjects/ann", headers=H).json()["name"] == "b"  # untouched
    assert api.client.get(f"/v1/faces/{face_b}", headers=H).status_code == 404  # not in the default


def test_read_keys_read_and_the_config_keys_keep_their_meaning(api: App) -> None:
    a = create(api, "a")
    kr = {"x-api-key": a["read"]}
    assert api.client.get("/v1/collections/a/subjects", headers=kr).status_code == 200
    r = api.client.post("/v1/collections/a/subjects", json={"name": "x"}, headers=kr)
    assert r.status_code == 403 and "read-only" in r.text
    default_read = {"x-api-key": READ}
    assert api.client.get("/v1/subjects", headers=default_read).status_code == 200
    assert api.client.get("/v1/collections/default/subjects", headers=default_read).status_code == 200
    assert api.client.get("/v1/collections/a/subjects", headers=default_read).status_code == 403
    assert api.client.get("/v1/collections/a/subjects").status_code == 401
    assert api.client.get("/v1/collections/a/subjects", headers={"x-api-key": "x" * 20}).status_code == 401
    assert api.client.get("/v1/collections/zzz/subjects", headers=H).status_code == 404


def test_collections_crud_and_their_own_threshold(api: App) -> None:
    create(api, "shop-1", threshold=0.9)
    listed = api.client.get("/v1/collections", headers=H).json()["collections"]
    assert [c["name"] for c in listed] == ["default", "shop-1"]
    assert listed[0]["threshold"] == 0.6 and listed[1]["threshold"] == 0.9
    api.client.post("/v1/collections/shop-1/subjects", json={"id": "s", "name": "S"}, headers=H)
    enrol(api, "shop-1", "s", 7)
    v = np.random.default_rng(7).standard_normal(DIM)
    near = (v / np.linalg.norm(v) * 0.95 + 0.05).tolist()  # close to the enrolled face, not equal
    r = api.client.post("/v1/collections/shop-1/identify/embeddings", json={"embeddings": [near]}, headers=H)
    match = r.json()["results"][0]["matches"][0]
    assert r.json()["threshold"] == 0.9 and match["match"] == (match["similarity"] >= 0.9)
    r = api.client.patch("/v1/collections/shop-1", json={"threshold": -1}, headers=H)
    assert r.status_code == 200 and r.json()["threshold"] == -1
    r = api.client.post("/v1/collections/shop-1/identify/embeddings", json={"embeddings": [near]}, headers=H)
    assert r.json()["results"][0]["matches"][0]["match"] is True
    got = api.client.get("/v1/collections/shop-1", headers=H).json()
    assert (got["subjects"], got["faces"], got["index"]) == (1, 1, "exact")
    assert api.client.post("/v1/collections", json={"name": "shop-1"}, headers=H).status_code == 409
    assert api.client.post("/v1/collections", json={"name": "Bad/Name"}, headers=H).status_code == 400
    assert api.client.patch("/v1/collections/default", json={"threshold": 0.1}, headers=H).status_code == 400
    r = api.client.delete("/v1/collections/shop-1", headers=H)
    assert r.json() == {"deleted": "shop-1", "subjects": 1, "faces": 1}
    assert api.client.get("/v1/collections/shop-1", headers=H).status_code == 404
    assert api.client.get("/v1/collections/shop-1/subjects", headers=H).status_code == 404


def test_a_collection_key_passes_protected_inference(tmp_path: Path) -> None:
    app = make_app(tmp_path, ApiKeys([ADMIN.encode()], [], protect_inference=True))
    keys = create(app, "a")
    body = {"embeddings": [[1.0] * DIM, [1.0] * DIM]}
    assert app.client.post("/v1/verify", json=body).status_code == 401
    assert app.client.post("/v1/verify", json=body, headers={"x-api-key": keys["read"]}).status_code == 200
    app.gallery.close()


def test_a_deleted_collections_keys_are_unknown(api: App) -> None:
    a = create(api, "a")
    api.client.delete("/v1/collections/a", headers=H)
    assert api.client.get("/v1/collections/a/subjects", headers={"x-api-key": a["admin"]}).status_code == 401


def test_over_grpc_the_collection_is_a_field_with_the_same_isolation(api: App) -> None:
    a, _ = create(api, "a"), create(api, "b")

    async def run() -> list[Any]:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            [face_grpc.handler(face_grpc.methods(api.ops, Edge(api.state.metrics)))]
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        out: list[Any] = []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.FaceStub(channel)

            async def call(method: str, key: str, **fields: Any) -> Any:
                try:
                    reply = await getattr(stub, method)(
                        pb.FaceRequest(**fields), metadata=[("x-api-key", key)]
                    )
                    return reply.json
                except grpc.aio.AioRpcError as err:
                    return err.code()

            out.append(
                await call("SubjectsCreate", a["admin"], collection="a", json='{"id": "s", "name": "S"}')
            )
            out.append(await call("SubjectsList", a["admin"], collection="a"))
            out.append(await call("SubjectsList", a["admin"], collection="b"))
            out.append(await call("SubjectsList", a["admin"]))  # empty: the default collection
            out.append(await call("SubjectsGet", ADMIN, collection="a", subject="s"))
            out.append(await call("CollectionsGet", a["admin"], collection="a"))
            out.append(await call("CollectionsCreate", ADMIN, json='{"name": "c"}'))
            out.append(await call("CollectionsDelete", ADMIN, collection="c"))
        await server.stop(None)
        return out

    made, listed, other, default, got, manage, created, deleted = asyncio.run(run())
    assert '"id":"s"' in made and '"total":1' in listed
    assert other == default == manage == grpc.StatusCode.PERMISSION_DENIED
    assert '"name":"S"' in got and '"keys"' in created and '"deleted":"c"' in deleted
