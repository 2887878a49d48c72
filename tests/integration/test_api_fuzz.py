"""Property-based API testing against a real server with the real models (schemathesis, bounded): every
operation that /openapi.json lists answers generated requests, valid and invalid, without a 5xx; and
the server is still ready afterwards."""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.edges.test_openapi_fuzz import unexpected_5xx
from tests.integration.conftest import Running


def test_no_operation_answers_5xx(server: Running) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    seen: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def answers_without_5xx(case: schemathesis.Case) -> None:
            response = case.call(timeout=60)
            seen.append(response.status_code)
            assert not unexpected_5xx(case, response.status_code), (
                case.method,
                case.path,
                response.status_code,
                response.text[:300],
            )

        answers_without_5xx()
    assert len(seen) >= 10 * len(operations), seen
    assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200
