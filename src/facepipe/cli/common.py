"""What every ``facepipe`` command shares: the app, consoles, common options, output and exit codes.

Exit codes: 0 done (and, for verify/identify, a match); 1 done, no match; 2 the request or the
command line was refused (bad input, not found, unauthorised); 3 the server failed or is unreachable.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from facepipe.client.shapes import to_json
from facepipe.errors import FacepipeError, MissingDependency

app = typer.Typer(
    help="facepipe: face-recognition serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console(soft_wrap=True)
EXIT_NO_MATCH, EXIT_REFUSED, EXIT_SERVER = 1, 2, 3

ModelsDir = Annotated[
    Path, typer.Option("--models", envvar="FACEPIPE_MODELS", help="Model repository directory.")
]
DataDir = Annotated[Path, typer.Option("--data", envvar="FACEPIPE_DATA", help="Data directory (gallery).")]
Url = Annotated[str, typer.Option("--url", envvar="FACEPIPE_URL", help="Server URL.")]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", envvar="FACEPIPE_API_KEY", help="x-api-key for gallery routes.")
]
CollectionName = Annotated[
    str | None,
    typer.Option(
        "--collection", envvar="FACEPIPE_COLLECTION", help="Gallery collection (default: the default one)."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
DEFAULT_URL = "http://127.0.0.1:9998"
# what `pip install 'facepipe[server]'` adds (import names), checked before a server-side command starts
SERVER_MODULES = ("onnx", "onnxruntime", "openvino", "cv2", "yaml", "pydantic", "starlette", "uvicorn")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)


@app.callback()
def _main(
    verbose: Annotated[
        int, typer.Option("-v", "--verbose", count=True, help="-v: info and HTTP request logs; -vv: debug.")
    ] = 0,
) -> None:
    """Quiet by default: warnings and errors only (``serve`` also logs its own progress)."""
    logging.basicConfig(
        level=LEVELS[min(verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


def server_logging() -> None:
    """``serve``: facepipe's own INFO lines (start-up, URLs, reloads) even without ``-v``."""
    logger = logging.getLogger("facepipe")
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


def emit_json(obj: Any) -> None:
    """JSON for scripts, in the server's own shapes (``facepipe.client.shapes``)."""
    out.print_json(json.dumps(to_json(obj)))


def exit_code(err: FacepipeError) -> int:
    if isinstance(err, MissingDependency):
        return EXIT_REFUSED
    return EXIT_SERVER if err.http_status >= 500 else EXIT_REFUSED


def need_server(command: str) -> None:
    """Refuse a server-side command, before it imports anything, on a client-only install."""
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependency(
            f"`facepipe {command}` needs the server install (missing: {', '.join(missing)}): "
            "pip install 'facepipe[server]'"
        )
