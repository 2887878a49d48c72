"""Property-based API testing from the OpenAPI document (schemathesis): every operation /openapi.json
lists, with generated parameters and bodies (valid and invalid), answers without a 5xx. In process
(real edges, real operations, a real SQLite gallery, no models); tests/integration/test_api_fuzz.py
runs the same against a real server with the models."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from tests.edges.conftest import make_app

APP = make_app(Path(tempfile.mkdtemp(prefix="facepipe-fuzz-")))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP.app)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
