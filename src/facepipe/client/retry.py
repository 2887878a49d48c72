"""When the client sends a call again: answers that say nothing was done (503, gRPC UNAVAILABLE or
RESOURCE_EXHAUSTED: a full queue), and, for calls that may be sent twice (reads and inference, never
writes), a connection broken after sending or a failure that did not come from facepipe (a proxy's
plain-text 500/502/504, gRPC INTERNAL/UNKNOWN: on a Ray Serve cluster, a replica or node that died with
the call in flight)."""

from __future__ import annotations

import random
from typing import Any

import httpx

from facepipe.client.calls import Call

RETRY_STATUS = 503
RETRY_CODES = ("UNAVAILABLE", "RESOURCE_EXHAUSTED")
BROKEN_STATUS = (500, 502, 504)
BROKEN_CODES = ("INTERNAL", "UNKNOWN")
SAFE_RPCS = frozenset({"Detect", "Embed", "Verify", "Identify", "IdentifyEmbeddings"})


def safe(call: Call[Any]) -> bool:
    """Sending it twice changes nothing."""
    return call.method == "GET" or call.rpc in SAFE_RPCS or call.path.endswith("/infer")


def may_resend(call: Call[Any], exc: httpx.TransportError) -> bool:
    """After a failed connection: always if the call never left, else only a safe call."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) or safe(call)


def resend_answer(call: Call[Any], response: httpx.Response) -> bool:
    """A 503, or a safe call's 5xx that is not facepipe's own (facepipe's errors are JSON)."""
    if response.status_code == RETRY_STATUS:
        return True
    ours = response.headers.get("content-type", "").startswith("application/json")
    return response.status_code in BROKEN_STATUS and not ours and safe(call)


def resend_code(call: Call[Any], code: str) -> bool:
    return code in RETRY_CODES or (code in BROKEN_CODES and call.rpc in SAFE_RPCS)


def backoff(attempt: int, base: float) -> float:
    return float(base * 2.0**attempt * (0.5 + random.random()))
