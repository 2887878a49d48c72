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
    assert not unexpected_5xx(case, response.status_code), (
        case.method,
        case.path,
        response.status_code,
        response.text[:300],
    )


def unexpected_5xx(case: schemathesis.Case, status: int) -> bool:
    """A 5xx the operation does not document: only 503 may be documented (not ready, overloaded, a
    store that cannot write); a 500 is always a bug."""
    documented = case.operation.definition.raw.get("responses", {})
    return status >= 500 and not (status == 503 and "503" in documented)
