"""Error answers become the ``facepipe.errors`` class of their status, whatever the body's form."""

from __future__ import annotations

import pytest

from facepipe import errors
from facepipe.client.calls import server_error


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (404, {"error": {"code": "not_found", "message": "no route POST /v1/detct"}}, errors.NotFound),
        (404, {"error": "unknown model 'x'"}, errors.NotFound),  # KServe's form
        (404, "<html>Not Found</html>", errors.NotFound),  # a proxy in front of the server
        (409, {"error": "exists"}, errors.Conflict),
        (413, "too large", errors.PayloadTooLarge),
        (418, "teapot", errors.InvalidInput),  # any other 4xx: refused
        (503, "busy", errors.Overloaded),
        (502, "bad gateway", errors.FacepipeError),
    ],
)
def test_status_picks_the_class(status: int, body: object, cls: type[errors.FacepipeError]) -> None:
    err = server_error(status, body)
    assert type(err) is cls
    assert err.http_status < 500 if status < 500 else err.http_status >= 500


def test_error_codes_map_to_their_classes() -> None:
    body = {"error": {"code": "store_unavailable", "message": "gallery store db:5432/g unreachable"}}
    err = server_error(503, body)
    assert isinstance(err, errors.StoreUnavailable) and "unreachable" in err.message
    assert type(server_error(404, {"error": {"code": "not_found", "message": "x"}})) is errors.NotFound
    assert type(server_error(500, {"error": {"code": "what", "message": "x"}})) is errors.FacepipeError
