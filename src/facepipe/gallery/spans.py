"""The gallery's tracing seam (the gallery imports no tracing library, nor the engine's seam): a hook
that opens a span around a gallery operation, as a child of whatever span is current.

``server/tracing.py`` installs an OpenTelemetry hook while tracing is on; until then ``span`` hands
back one shared do-nothing context manager.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

Hook = Callable[[str, Mapping[str, Any]], AbstractContextManager[Any]]

hook: Hook | None = None  # None: tracing is off
_OFF: AbstractContextManager[None] = contextlib.nullcontext()


def install(new: Hook | None) -> None:
    global hook  # noqa: PLW0603 - one hook per process, as engine/spans.py
    hook = new


def span(name: str, attributes: Mapping[str, Any]) -> AbstractContextManager[Any]:
    """A span named ``name`` around the ``with`` block while tracing is on."""
    return _OFF if hook is None else hook(name, attributes)
