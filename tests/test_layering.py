"""Each room of src/facepipe/ imports only the rooms below it (docs/architecture.md); no arrow runs up.

The rooms, lowest first: errors and config (shared vocabulary) < engine < models < runtime < face <
gallery < api < edges < server; client, tools and cli sit beside them at the top. ``protos`` holds
generated stubs and may be imported by any room that speaks gRPC.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "facepipe"
BASE = {"errors", "config"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "config": {"errors"},
    "protos": set(),
    "engine": BASE,
    "models": BASE | {"engine"},
    "runtime": BASE | {"engine", "models"},
    "face": BASE | {"engine", "models", "runtime"},
    "gallery": BASE,
    "api": BASE | {"engine", "models", "runtime", "face", "gallery"},
    "edges": BASE | {"engine", "models", "api", "protos"},
    "server": BASE | {"engine", "models", "runtime", "face", "gallery", "api", "edges", "protos"},
    "client": {"errors", "protos"},
    "tools": {"errors", "client", "protos"},
    "cli": BASE | {"client", "tools", "models", "server", "api", "gallery"},
}
# third-party modules a room must not touch (transport stays in edges/, the SDK stays light, Ray in server/)
FOREIGN: dict[str, tuple[str, ...]] = {
    "engine": ("starlette", "grpc", "uvicorn", "ray"),
    "models": ("starlette", "grpc", "uvicorn", "ray"),
    "runtime": ("starlette", "grpc", "uvicorn", "ray"),
    "face": ("starlette", "grpc", "uvicorn", "ray"),
    "gallery": ("starlette", "grpc", "uvicorn", "ray"),
    "api": ("starlette", "grpc", "uvicorn", "ray"),
    "client": ("openvino", "onnxruntime", "faiss", "torch", "starlette", "uvicorn", "cv2", "ray"),
    "tools": ("openvino", "onnxruntime", "faiss", "torch", "starlette", "uvicorn", "ray"),
    "edges": ("ray",),  # Ray Serve is one way to host the edges: server/ray_app.py adapts them
}


def room_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def imports_of(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            if node.module == "facepipe":
                names += [f"facepipe.{a.name}" for a in node.names]
    return names


def test_every_room_is_declared() -> None:
    rooms = {room_of(p) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE}
    assert rooms <= set(ALLOWED), f"undeclared rooms: {sorted(rooms - set(ALLOWED))}"
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.stem not in {"__init__", "errors", "config"})
    assert loose == [], "the top of src/facepipe keeps only errors.py, config.py and __init__.py"


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_room_imports_only_rooms_below(room: str) -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent == PACKAGE and path.name == "__init__.py":
            continue
        if room_of(path) != room or "_pb2" in path.name:
            continue
        for name in imports_of(path):
            parts = name.split(".")
            if parts[0] == "facepipe" and len(parts) > 1:
                target = parts[1]
                if target != room and target not in ALLOWED[room] and target != "__version__":
                    offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
            elif parts[0] in FOREIGN.get(room, ()):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []


def test_layering_check_catches_an_upward_arrow(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("from facepipe.edges.http import JsonResponse\nimport starlette\n")
    assert imports_of(bad) == ["facepipe.edges.http", "starlette"]
    assert "edges" not in ALLOWED["api"] and "starlette" in FOREIGN["api"]
