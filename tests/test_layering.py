"""serving/ is the generic engine: it never imports the face domain (or the app that wires it)."""

from __future__ import annotations

import ast
from pathlib import Path

SERVING = Path(__file__).resolve().parents[1] / "src" / "facepipe" / "serving"
FORBIDDEN = ("facepipe.face", "facepipe.gallery", "facepipe.app", "facepipe.models", "facepipe.config")


def test_serving_never_imports_face() -> None:
    offenders = []
    for path in SERVING.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(FORBIDDEN)]
    assert offenders == []
