"""A request in flight through a pipeline."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Item:
    """One payload travelling the stages; its future is resolved on the submitter's event loop."""

    payload: Any
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    deadline: float  # time.monotonic() after which the item is dropped
    request_id: int = 0
    stage_index: int = 0
    created: float = field(default_factory=time.monotonic)
    entered: float = 0.0
    profile: list[tuple[str, float, float]] = field(default_factory=list)  # (stage, queued_ms, run_ms)
    tags: dict[str, str] = field(default_factory=dict)
    flow: Any = None  # the request's progress through a DAG (pipeline.Flow); None on a line
    trace: Any = None  # the request's trace context (engine/spans.py); None: not traced


def resolve_all(done: list[tuple[Item, Any]]) -> None:
    """Set each item's result (or exception) on its event loop: one wake-up per loop, not per item."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for item, value in done:
        by_loop.setdefault(item.loop, []).append((item.future, value))
    for loop, pairs in by_loop.items():
        loop.call_soon_threadsafe(_set_all, pairs)


def _set_all(pairs: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, value in pairs:
        if future.done():
            continue
        if isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)
