"""The seed pipeline protocol, shared by its HTTP and gRPC edges: key/value in, named arrays out."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from facepipe.api import jsondoc
from facepipe.edges.state import ServerState
from facepipe.errors import InvalidInput, NotFound

PROFILE_KEY = "pipeline.profile"


@dataclass(slots=True)
class SeedReply:
    keys: list[str]
    values: list[Any]  # numpy repr strings, or nested lists when JSON numbers were asked for
    variant: str = ""  # "<service>/<version>" that answered


def numpy_repr(arr: np.ndarray) -> str:
    """The seed's ``repr(ndarray)`` text, e.g. ``array([[0.1, -0.2]], dtype=float32)``.

    Finite floating arrays are written by orjson with the shortest digits that read back to the same
    value (numpy's repr does the same, but costs ~0.8 ms for one embedding; Python's per-float
    formatting cost ~35 us, a tenth of the seed request's front-end time).
    """
    if arr.dtype.kind != "f" or arr.ndim == 0 or not np.isfinite(arr).all():
        with np.printoptions(threshold=sys.maxsize):
            return repr(arr)
    text = orjson.dumps(np.ascontiguousarray(arr), option=orjson.OPT_SERIALIZE_NUMPY)
    return f"array({text.replace(b',', b', ').decode()}, dtype={arr.dtype.name})"


def parse_json(body: bytes) -> tuple[Any, dict[str, str]]:
    """``(logid, feed)`` from a seed JSON request."""
    req = jsondoc.loads(body)
    if not isinstance(req, dict):
        raise InvalidInput("request must be a JSON object with 'key' and 'value' lists")
    return req.get("logid"), feed_of(req.get("key"), req.get("value"))


def feed_of(keys: Any, values: Any) -> dict[str, str]:
    if not isinstance(keys, list) or not isinstance(values, list) or len(keys) != len(values):
        raise InvalidInput("'key' and 'value' must be lists of the same length")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in zip(keys, values, strict=True)):
        raise InvalidInput("'key' and 'value' entries must be strings")
    return dict(zip(keys, values, strict=True))


async def predict(
    state: ServerState, name: str, feed: dict[str, str], as_json: bool, sticky: str | None = None
) -> SeedReply:
    """Run seed service ``name`` on the version its traffic split picks (``sticky``: the request's
    sticky key); ``pipeline.profile: "1"`` in the feed adds per-stage timings."""
    service = state.seed.get(name)
    if service is None:
        raise NotFound(f"service {name!r} is not served; services: {sorted(state.seed)}")
    profile = feed.pop(PROFILE_KEY, "0") in ("1", "true")
    version, variant = service.variants.pick(sticky)
    payload = service.feed(feed)
    with state.budget.admit([payload] if isinstance(payload, bytes) else []):
        result = await variant.pipeline.submit(payload)
    out = service.fetch(result.value)
    as_json = as_json or state.json_numbers
    values = [o.tolist() if as_json else numpy_repr(o) for o in out.values()]
    reply = SeedReply(list(out), values, f"{name}/{version}")
    state.metrics.variant(name, version)
    if profile:
        reply.keys.append(PROFILE_KEY)
        timings = [{"op": s, "in_ms": q, "midp_ms": r} for s, q, r in result.profile]
        reply.values.append(json.dumps(timings))
    return reply
