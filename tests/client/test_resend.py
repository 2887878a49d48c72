"""Which calls the client sends again after a broken connection: any that never left; after it was
sent, only those that change nothing when repeated (reads and inference, never writes)."""

from __future__ import annotations

import httpx
import pytest

from facepipe.client import calls
from facepipe.client.retry import may_resend, resend_answer, resend_code

BROKEN = httpx.RemoteProtocolError("server disconnected without sending a response")
NEVER_SENT = httpx.ConnectError("connection refused")


@pytest.mark.parametrize(
    ("call", "again"),
    [
        (calls.detect([b"x"]), True),
        (calls.identify_embeddings([[0.0, 1.0]]), True),
        (calls.subject("s1"), True),
        (calls.infer("ArcFace", {}), True),
        (calls.enrol("s1", [b"x"]), False),
        (calls.create_subject("n"), False),
        (calls.delete_subject("s1"), False),
    ],
)
def test_broken_after_sending(call: calls.Call[object], again: bool) -> None:
    assert may_resend(call, BROKEN) is again
    assert may_resend(call, NEVER_SENT)  # nothing reached the server: always safe


def test_failures_not_from_facepipe_are_resent_only_for_safe_calls() -> None:
    proxy = httpx.Response(500, text="Internal Server Error")  # Ray's proxy: the replica died
    ours = httpx.Response(500, json={"error": {"code": "internal", "message": "bug"}})
    assert resend_answer(calls.detect([b"x"]), proxy) and not resend_answer(calls.detect([b"x"]), ours)
    assert not resend_answer(calls.enrol("s1", [b"x"]), proxy)
    assert resend_answer(calls.enrol("s1", [b"x"]), httpx.Response(503, text="busy"))  # nothing done
    assert resend_code(calls.identify([b"x"]), "INTERNAL") and not resend_code(
        calls.enrol("s", [b"x"]), "INTERNAL"
    )
    assert resend_code(calls.enrol("s1", [b"x"]), "RESOURCE_EXHAUSTED")
