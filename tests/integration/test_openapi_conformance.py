"""What a real server answers is what /openapi.json says, route by route: every JSON answer (success
and error) validates against the documented schema of its path, method and status, with objects
closed (a field the document does not name fails the test)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS30Validator

from tests.integration.conftest import Running
from tests.integration.test_client_cli import cserver  # noqa: F401  (a server with API keys)
from tests.integration.test_gallery_api import ADMIN, READ, people

W, R = {"x-api-key": ADMIN}, {"x-api-key": READ}


def closed(node: Any) -> Any:
    """Every object schema that names its properties refuses any other."""
    if isinstance(node, dict):
        out = {k: closed(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [closed(v) for v in node]
    return node


class Checker:
    def __init__(self, url: str) -> None:
        self.url = url
        self.doc = httpx.get(url + "/openapi.json").json()
        self.components = closed(copy.deepcopy(self.doc["components"]))
        self.seen: set[tuple[str, str, int]] = set()

    def __call__(self, method: str, path: str, template: str, **kw: Any) -> httpx.Response:
        r = httpx.request(method, self.url + path, timeout=60, **kw)
        responses = self.doc["paths"][template][method.lower()]["responses"]
        assert str(r.status_code) in responses, (method, path, r.status_code, r.text[:300])
        answer = responses[str(r.status_code)]
        if "$ref" in answer:
            answer = self.doc["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
        content = answer.get("content", {})
        if "application/json" in content:
            schema = closed(content["application/json"]["schema"])
            OAS30Validator({**schema, "components": self.components}).validate(r.json())
        else:
            media = r.headers.get("content-type", "").split(";")[0]
            assert not content or media in content or "*/*" in content, (path, media, list(content))
        self.seen.add((method, template, r.status_code))
        return r


@pytest.fixture(scope="module")
def check(cserver: Running) -> Iterator[Checker]:  # noqa: F811
    yield Checker(cserver.url)


def test_face_routes(check: Checker, lfw_dir: Path) -> None:
    (a, b), *_ = people(lfw_dir, 1, 2).values()
    img = [("image", a.read_bytes())]
    check("POST", "/v1/detect?liveness=true", "/v1/detect", files=img)
    check("POST", "/v1/embed", "/v1/embed", files=img)
    check("POST", "/v1/embed?aligned=true", "/v1/embed", files=img)
    check("POST", "/v1/verify", "/v1/verify", files=[("a", a.read_bytes()), ("b", b.read_bytes())])
    check("POST", "/v1/verify", "/v1/verify", json={"embeddings": [[1, 0], [0.6, 0.8]]})
    check("POST", "/v1/detect", "/v1/detect", files=[("image", b"\xff\xd8\xff\xe0 broken")])  # 400
    check("POST", "/v1/detect", "/v1/detect", files=[("image", b"plain text")])  # 415


def test_gallery_routes(check: Checker, lfw_dir: Path) -> None:
    (a, b, c), *_ = people(lfw_dir, 1, 3).values()
    subject = check("POST", "/v1/subjects", "/v1/subjects", json={"name": "Doc", "id": "doc-1"}, headers=W)
    assert subject.status_code == 201
    check("POST", "/v1/subjects", "/v1/subjects", json={"name": "Doc", "id": "doc-1"}, headers=W)  # 409
    check("POST", "/v1/subjects", "/v1/subjects", json={"name": "x"})  # 401
    check("POST", "/v1/subjects", "/v1/subjects", json={"name": "x"}, headers=R)  # 403
    check("GET", "/v1/subjects?limit=5", "/v1/subjects", headers=R)
    check("GET", "/v1/subjects/doc-1", "/v1/subjects/{sid}", headers=R)
    check("GET", "/v1/subjects/nobody", "/v1/subjects/{sid}", headers=R)  # 404
    check("PATCH", "/v1/subjects/doc-1", "/v1/subjects/{sid}", json={"metadata": {"k": 1}}, headers=W)
    files = [("a", a.read_bytes()), ("b", b.read_bytes())]
    enrolled = check("POST", "/v1/subjects/doc-1/faces", "/v1/subjects/{sid}/faces", files=files, headers=W)
    fid = enrolled.json()["faces"][0]["id"]
    check("GET", "/v1/subjects/doc-1/faces", "/v1/subjects/{sid}/faces", headers=R)
    check("GET", f"/v1/faces/{fid}", "/v1/faces/{fid}", headers=R)
    check("GET", f"/v1/faces/{fid}/crop", "/v1/faces/{fid}/crop", headers=R)
    found = check("POST", "/v1/identify?k=2", "/v1/identify", files=[("c", c.read_bytes())], headers=R)
    emb = httpx.post(check.url + "/v1/embed", files=[("c", c.read_bytes())]).json()
    query = {"embeddings": [emb["results"][0]["faces"][0]["embedding"]], "model": emb["model"]}
    check("POST", "/v1/identify/embeddings", "/v1/identify/embeddings", json=query, headers=R)
    assert found.json()["results"][0]["faces"][0]["matches"][0]["subject"] == "doc-1"
    check("DELETE", f"/v1/faces/{fid}", "/v1/faces/{fid}", headers=W)
    check("DELETE", "/v1/subjects/doc-1", "/v1/subjects/{sid}", headers=W)


def test_kserve_admin_seed_and_operations(check: Checker, lfw_dir: Path) -> None:
    import base64

    (a,), *_ = people(lfw_dir, 1, 1).values()
    b64 = base64.b64encode(a.read_bytes()).decode()
    for path in ("/v2", "/v2/health/live", "/v2/health/ready"):
        check("GET", path, path)
    check("GET", "/v2/models/mobilefacenet", "/v2/models/{model}")
    check("GET", "/v2/models/mobilefacenet/versions/1", "/v2/models/{model}/versions/{version}")
    check("GET", "/v2/models/nope", "/v2/models/{model}")  # 404
    check("GET", "/v2/models/ArcFace/ready", "/v2/models/{model}/ready")
    tensor = {"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64]}
    check("POST", "/v2/models/ArcFace/infer", "/v2/models/{model}/infer", json={"inputs": [tensor]})
    check("POST", "/v2/models/ArcFace/infer", "/v2/models/{model}/infer", json={"inputs": 3})  # 400
    check("POST", "/v2/repository/index", "/v2/repository/index")
    weights = "/v2/repository/models/{model}/weights"
    check("POST", weights.format(model="ArcFace"), weights, json={"weights": {"1": 100}}, headers=W)
    check("POST", weights.format(model="ArcFace"), weights, json={"weights": {"1": 100}})  # 401
    seed = {"key": ["image"], "value": [b64]}
    check("POST", "/ArcFace/prediction", "/{service}/{method}", json=seed)
    check("POST", "/Nope/prediction", "/{service}/{method}", json=seed)  # 404
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        check("GET", path, path)
    check("GET", "/docs/swagger-ui.css", "/docs/{asset}")
    statuses = {s for _, _, s in check.seen}
    assert {200, 201, 400, 401, 403, 404, 409, 415} <= statuses, statuses
