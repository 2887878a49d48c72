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

    def resolve(self, value: Any) -> None:
        self.loop.call_soon_threadsafe(_set, self.future, value)


def _set(future: asyncio.Future[Any], value: Any) -> None:
    if future.done():
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)
