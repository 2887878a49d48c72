"""``auth.protect_inference``: detect, embed, verify, the seed routes and KServe inference need a read
or admin key (issue 22 item 4); gRPC goes through the same checks (edges/grpc.py, face_grpc.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facepipe.api.auth import ApiKeys
from tests.edges.conftest import ADMIN, DIM, make_app

READ = "read-key-0123456789ab"
ROUTES = ["/v1/detect", "/v1/embed", "/v1/verify", "/ArcFace/prediction", "/v2/models/ArcFace/infer"]


@pytest.mark.parametrize("protect", [True, False])
def test_inference_routes_need_a_key_when_protected(tmp_path: Path, protect: bool) -> None:
    keys = ApiKeys([ADMIN.encode()], [READ.encode()], protect_inference=protect)
    app = make_app(tmp_path, keys)
    body = {"embeddings": [[1.0] * DIM, [1.0] * DIM], "key": [], "value": [], "inputs": []}
    for path in ROUTES:
        r = app.client.post(path, json=body)
        denied = r.status_code == 401 or (r.status_code == 200 and r.json().get("err_no") == 5000)
        assert denied == protect, (path, r.status_code, r.text)
        if protect:
            assert "missing API key" in r.text
    r = app.client.post("/v1/verify", json=body, headers={"x-api-key": READ})
    assert r.status_code == 200 and r.json()["similarity"] == 1.0, r.text
    app.gallery.close()


def test_verify_embeddings_must_have_the_model_dimension(tmp_path: Path) -> None:
    """Item 8: 3-value embeddings answered similarity 1.0."""
    app = make_app(tmp_path)
    for a, b in (([1, 0, 0], [1, 0, 0]), ([1.0] * DIM, [1.0] * (DIM + 1)), ([1.0] * DIM, [0.0] * DIM)):
        r = app.client.post("/v1/verify", json={"embeddings": [a, b]})
        assert r.status_code == 400, (a, b, r.text)
    app.gallery.close()
