"""The tracing seam: what the engine and the edges call so that each request can be traced (edge →
each op it passes through), with no tracing library in the engine.

A binding (facepipe's is OpenTelemetry, ``server/tracing.py``) is installed process-wide with
``install``; while none is, ``active`` is None and nothing here costs more than that one check: no
context is captured and no span object is made.

Batching: one op call serves several requests. Each traced request gets a step of its own in its own
trace (``Batch.steps``), all with the batch's start, end and size, so that every trace shows the whole
path of its request; one batch span linked to N traces would leave each trace with a hole where the
op ran (trace viewers show links only as a list).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class RequestSpan(Protocol):
    """A request's root span, current while its handler runs."""

    def end(self, label: str, status: str, http_status: int | None) -> None:
        """Close it with the route label, facepipe's status (``ok``, an error code, ``cancelled``) and
        the HTTP status of the answer (None where there is none, as on gRPC's own error path)."""


@dataclass(slots=True)
class Step:
    """One request's part in a batch: its trace context, its wait in the queue, its own error."""

    context: Any
    queued_s: float
    error: BaseException | None = None


@dataclass(slots=True)
class Batch:
    """One op call, as seen by the stage that made it (a process op is timed from the parent side)."""

    op: str
    size: int  # items in the call, traced or not
    start: float  # time.monotonic()
    end: float
    process: bool = False
    steps: list[Step] = field(default_factory=list)


class Spans(Protocol):
    def request(self, protocol: str, carrier: Mapping[str, str]) -> RequestSpan:
        """Start a request's root span, continuing the caller's trace where ``carrier`` (HTTP headers,
        gRPC metadata) has a W3C ``traceparent``, and make it current."""

    def capture(self) -> Any:
        """The current trace context if it is being recorded (a sampled request), else None: the
        engine keeps it with the request's items and hands it back in ``Batch.steps``."""

    def batch(self, batch: Batch) -> None:
        """Record a finished op call: a span per step, in that step's trace."""


active: Spans | None = None  # the installed binding (None: tracing is off)


def install(spans: Spans | None) -> None:
    """Make ``spans`` the process's tracing binding (None: tracing off)."""
    global active  # noqa: PLW0603 - one binding per process, as OpenTelemetry has one provider
    active = spans
