"""The examples run against a real server and do what they say."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import Running
from tests.integration.test_client_cli import cserver  # noqa: F401  (a server with API keys)
from tests.integration.test_gallery_api import ADMIN, people

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, check=True, cwd=ROOT
    )
    return done.stdout


def test_seed_clients_over_http_and_rpc(server: Running, lfw_dir: Path, tmp_path: Path) -> None:
    for p in sorted((lfw_dir / "images").glob("*/*.jpg"))[:6]:
        shutil.copy(p, tmp_path / p.name)
    http = run("examples/http_client.py", str(tmp_path), "--url", server.url)
    rpc = run("examples/rpc_client.py", str(tmp_path), "--target", server.grpc)
    assert "6 images in" in http and "192-d" in http
    assert "6 images in" in rpc and "norm 1.0000" in rpc


def test_identify_demo(cserver: Running, lfw_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    who = people(lfw_dir, 2, 3)
    for name, paths in who.items():
        (tmp_path / "people" / name).mkdir(parents=True)
        for p in paths[:2]:
            shutil.copy(p, tmp_path / "people" / name / p.name)
    name, paths = next(iter(who.items()))
    out = run(
        "examples/identify_demo.py",
        str(tmp_path / "people"),
        str(paths[2]),
        "--url",
        cserver.url,
        "--api-key",
        ADMIN,
    )
    assert f"{name}: 2 faces enrolled" in out
    assert f": {name.replace('_', ' ')}" in out
