"""The client turns a server's error answer back into the server's own error class."""

from __future__ import annotations

from facepipe import errors
from facepipe.client.calls import server_error


def test_error_codes_map_to_their_classes() -> None:
    body = {"error": {"code": "store_unavailable", "message": "gallery store db:5432/g unreachable"}}
    err = server_error(503, body)
    assert isinstance(err, errors.StoreUnavailable) and "unreachable" in err.message
    assert type(server_error(404, {"error": {"code": "not_found", "message": "x"}})) is errors.NotFound
    assert type(server_error(500, {"error": {"code": "what", "message": "x"}})) is errors.FacepipeError
