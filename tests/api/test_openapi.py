"""The OpenAPI document is valid OpenAPI 3 and describes every route of a real server's app (built by
``build_server`` with the real models and gallery), with its schemas, errors and key scheme."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from facepipe.api.openapi import document
from facepipe.config import parse_config
from facepipe.server.app import build_server

SWAGGER = Path(__file__).resolve().parents[2] / "src" / "facepipe" / "edges" / "static" / "swagger"


@pytest.fixture(scope="module")
def app_routes(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Route]:
    server = build_server(parse_config({}), models_dir, tmp_path_factory.mktemp("data"))
    return [r for r in server.routes.routes if isinstance(r, Route)]


def test_the_document_is_valid_openapi() -> None:
    validate(document())  # raises OpenAPIValidationError naming the bad part


def test_every_route_of_the_app_is_described(app_routes: list[Route]) -> None:
    paths = document()["paths"]
    missing = [
        f"{m} {r.path}"
        for r in app_routes
        for m in sorted(r.methods or ())
        if m != "HEAD" and m.lower() not in paths.get(r.path, {})
    ]
    assert not missing, missing
    assert {"/v1/identify", "/v1/subjects/{sid}/faces", "/{service}/{method}", "/docs"} <= {
        r.path for r in app_routes
    }  # the app under test has the gallery, the seed catch-all and the docs
    served = {(m.lower(), r.path) for r in app_routes for m in r.methods or ()}
    described = {(m, p) for p, ops in paths.items() for m in ops}
    assert described <= served, described - served  # nothing described that is not served


def test_each_operation_answers_a_schema_and_its_errors() -> None:
    doc = document()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ok = next(s for s in op["responses"] if s[0] in "23")  # 3xx: the UI's redirects
            assert op["responses"][ok]["description"], (method, path)
    identify = doc["paths"]["/v1/identify"]["post"]
    assert identify["security"] == [{"ApiKey": []}, {}]
    assert {"400", "401", "403"} <= set(identify["responses"])
    assert doc["paths"]["/v1/subjects"]["post"]["security"] == [{"ApiKey": []}]
    assert doc["paths"]["/v2/repository/models/{model}/load"]["post"]["security"] == [{"ApiKey": []}]
    scheme = doc["components"]["securitySchemes"]["ApiKey"]
    assert scheme == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    face = doc["components"]["schemas"]["Face"]["properties"]
    assert set(face["box"]["properties"]) == {"x1", "y1", "x2", "y2"}


def test_the_vendored_swagger_files_are_the_pinned_ones() -> None:
    lines = (SWAGGER / "VERSION").read_text().splitlines()
    assert lines[0].startswith("swagger-ui-dist 5.35.0")
    for line in lines[2:]:
        digest, name = line.split()
        assert hashlib.sha256((SWAGGER / name).read_bytes()).hexdigest() == digest, name
        assert (SWAGGER / name).stat().st_size < 2_000_000
