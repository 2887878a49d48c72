"""JSON documents from clients, with limits checked before parsing.

Every JSON body or field (HTTP, gRPC, seed, KServe) is read by ``loads``: the nesting depth is measured
on the raw bytes (strings removed, brackets counted, vectorised) and refused above ``MAX_DEPTH`` before
the parser sees it, so nesting can never reach the parser's recursion limit. ``aloads`` parses large
documents in a worker thread so that a 12 MB document does not stall the event loop. ``metadata_of``
holds a subject's metadata to tighter limits (8 levels, 64 KB) before it is stored.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import orjson

from facepipe.errors import InvalidInput

T = TypeVar("T")

META_DEPTH = 8  # a subject's metadata: nesting depth ...
META_BYTES = 64 * 1024  # ... and size as JSON
MAX_DEPTH = 32  # deepest nesting any facepipe request needs is a KServe tensor of rank < 30
OFF_LOOP_BYTES = 64 * 1024  # larger documents are parsed in a worker thread

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def raw_depth(data: bytes) -> int:
    """The deepest bracket nesting of JSON text, strings ignored (no parsing, no recursion)."""
    brackets = np.frombuffer(_STRING.sub(b"", data).translate(None, _NOT_BRACKETS), np.uint8)
    if brackets.size == 0:
        return 0
    opens = (brackets == ord("[")) | (brackets == ord("{"))
    return int(np.cumsum(np.where(opens, 1, -1), dtype=np.int32).max(initial=0))


def depth(value: Any) -> int:
    """The nesting depth of a parsed value (iterative: safe for any depth)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v)
    return deepest


def loads(data: bytes | str, label: str = "request", max_depth: int = MAX_DEPTH) -> Any:
    """Parse a client's JSON; InvalidInput for bad text or nesting deeper than ``max_depth``."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    found = raw_depth(raw)
    if found > max_depth:
        raise InvalidInput(f"{label}: JSON nested {found} deep; the limit is {max_depth}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{label} is not valid JSON: {exc}") from None


async def sized(parse: Callable[[bytes], T], data: bytes) -> T:
    """``parse(data)``, in a worker thread when ``data`` is over ``OFF_LOOP_BYTES``."""
    if len(data) <= OFF_LOOP_BYTES:
        return parse(data)
    return await asyncio.to_thread(parse, data)


async def aloads(data: bytes, label: str = "request") -> Any:
    """``loads``, in a worker thread for documents over ``OFF_LOOP_BYTES``."""
    return await sized(lambda d: loads(d, label), data)


def metadata_of(doc: dict[str, Any]) -> dict[str, Any] | None:
    """A subject's ``metadata`` from a request document (None: not given), within its limits."""
    meta = doc.get("metadata")
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise InvalidInput("metadata: expected a JSON object")
    if depth(meta) > META_DEPTH:
        raise InvalidInput(f"metadata: nested {depth(meta)} deep; the limit is {META_DEPTH}")
    try:
        size = len(orjson.dumps(meta))
    except (TypeError, orjson.JSONEncodeError) as exc:  # e.g. integers beyond 64 bits
        raise InvalidInput(f"metadata: cannot be stored as JSON ({exc})") from None
    if size > META_BYTES:
        raise InvalidInput(f"metadata: {size} bytes as JSON; the limit is {META_BYTES}")
    return meta
