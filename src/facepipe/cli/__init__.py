"""The ``facepipe`` command line. The only place that configures logging."""

from __future__ import annotations

import sys

from rich.markup import escape

from facepipe.cli import (  # noqa: F401  (they register their commands)
    collections,
    faces,
    gallery,
    gallery_store,
    server,
    tools,
)
from facepipe.cli.common import app, console, exit_code
from facepipe.errors import FacepipeError


def main() -> None:
    try:
        app()
    except FacepipeError as exc:
        console.print(f"[red]error:[/] {escape(exc.message)}")  # messages hold brackets: [server]
        sys.exit(exit_code(exc))
