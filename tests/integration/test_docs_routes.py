"""A real server's browsable API and its answers to a new user's first mistakes: /openapi.json (valid,
the whole document) and Swagger UI at /docs from local files; unknown routes answer 404 in JSON; the
KServe platform names the runtime that runs the model; the repository index lists the ArcFace
service; the start-up log lists every URL served."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import tritonclient.grpc
import tritonclient.http
from openapi_spec_validator import validate

from facepipe.api.openapi import document
from facepipe.models.repository import Repository
from facepipe.runtime import platform_of
from facepipe.runtime.openvino import installed
from tests.integration.conftest import Running


def test_openapi_json_is_the_whole_valid_document(server: Running) -> None:
    doc = httpx.get(server.url + "/openapi.json").json()
    validate(doc)
    assert doc == document()
    assert {"/v1/identify", "/v2/models/{model}/infer", "/{service}/{method}"} <= set(doc["paths"])


def test_swagger_ui_is_served_from_local_files(server: Running) -> None:
    page = httpx.get(server.url + "/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '"/openapi.json"' in page.text and "https://" not in page.text  # nothing from the network
    for asset in ("/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/LICENSE"):
        r = httpx.get(server.url + asset)
        assert r.status_code == 200 and len(r.content) > 1000, asset
    assert "SwaggerUIBundle" in httpx.get(server.url + "/docs/swagger-ui-bundle.js").text
    missing = httpx.get(server.url + "/docs/VERSIONS.txt")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/v1/detct", 404),  # a typo: once answered 200 with a seed error about UTF-8
        ("POST", "/v1/detect/extra", 404),
        ("GET", "/nothing", 404),
        ("GET", "/v1/detect", 405),
    ],
)
def test_unknown_routes_answer_json(server: Running, method: str, path: str, status: int) -> None:
    r = httpx.request(method, server.url + path, content=b"\xff\xd8 not json")
    assert r.status_code == status and r.headers["content-type"] == "application/json"
    assert path in r.json()["error"]["message"] and "/openapi.json" in r.json()["error"]["message"]


def test_an_unknown_seed_service_is_404_with_its_seed_code(server: Running) -> None:
    r = httpx.post(server.url + "/Nope/prediction", json={"key": ["image"], "value": ["x"]})
    assert r.status_code == 404
    assert r.json()["err_no"] == 3002 and r.json()["error"]["code"] == "not_found"


def test_kserve_platform_names_the_runtime(server: Running, models_dir: Path) -> None:
    meta = httpx.get(server.url + "/v2/models/mobilefacenet").json()
    expected = platform_of(Repository(models_dir).bundle("mobilefacenet"))
    assert meta["platform"] == expected == ("openvino_onnx" if installed() else "onnxruntime_onnx")


def test_repository_index_lists_the_arcface_service(server: Running) -> None:
    host = server.url.removeprefix("http://")
    rows = tritonclient.http.InferenceServerClient(host).get_model_repository_index()
    assert {"name": "ArcFace", "version": "1", "state": "READY", "reason": "pipeline"} in rows
    assert any(r["name"] == "mobilefacenet" for r in rows)
    index = tritonclient.grpc.InferenceServerClient(server.grpc).get_model_repository_index(as_json=True)
    assert any(m["name"] == "ArcFace" and m["state"] == "READY" for m in index["models"])


def test_startup_log_lists_every_url(server: Running) -> None:
    log = (server.log_dir.parent / "server.log").read_text()
    for what in ("/docs", "/openapi.json", "/ArcFace/prediction", "/v2/repository/index", "/v1/detect"):
        assert f"{server.url}" in log and what in log, what
    assert f"gRPC on {server.grpc}" in log
