"""The client-only install (`pip install facepipe`): built from this tree into a clean venv, it has no
server packages (no OpenVINO, FAISS, OpenCV or PyTorch), its CLI talks to a running server, and the
server-side commands refuse with the install that would give them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Running

# building the venv takes 60-90 s on 2 busy cores (pip resolves, downloads or reads its cache, builds
# the wheel); `make test` runs it all the same
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
# (pydantic is not among them: typer depends on it)
SERVER_ONLY = ("openvino", "faiss", "cv2", "torch", "onnxruntime", "onnx", "starlette", "uvicorn", "yaml")


def _run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with `pip install <a copy of this tree>` (the machine's pip config and cache)."""
    tmp = tmp_path_factory.mktemp("client-install")
    src = tmp / "facepipe"  # a copy: pip builds in the source tree (build/, egg-info)
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)])
    assert made.returncode == 0, made.stderr
    done = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(src)], timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return venv


def test_no_server_packages(client_venv: Path) -> None:
    code = "import importlib.util as u, json; print(json.dumps([m for m in %r if u.find_spec(m)]))"
    done = _run([str(client_venv / "bin" / "python"), "-c", code % (SERVER_ONLY,)])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    # and the SDK imports there
    sdk = "import facepipe.client, facepipe.tools.bench, facepipe.tools.eval_server, facepipe.cli"
    done = _run([str(client_venv / "bin" / "python"), "-c", sdk])
    assert done.returncode == 0, done.stderr


def test_cli_detect_and_verify_against_a_server(client_venv: Path, server: Running, lfw_dir: Path) -> None:
    cli = str(client_venv / "bin" / "facepipe")
    a, b = sorted((lfw_dir / "images" / "Aaron_Sorkin").glob("*.jpg"))[:2]
    detected = _run([cli, "detect", str(a), "--url", server.url, "--json"], timeout=60)
    assert detected.returncode == 0, detected.stderr
    (result,) = json.loads(detected.stdout)
    assert len(result["faces"]) >= 1 and result["faces"][0]["score"] > 0.9
    verified = _run([cli, "verify", str(a), str(b), "--url", server.url, "--json"], timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr  # exit 0: the same person
    assert json.loads(verified.stdout)["match"] is True


@pytest.mark.parametrize(
    "args", [["serve"], ["convert", "x.onnx", "--name", "x"], ["models", "pull"], ["gallery", "reembed"]]
)
def test_server_commands_say_what_to_install(client_venv: Path, args: list[str], tmp_path: Path) -> None:
    done = _run([str(client_venv / "bin" / "facepipe"), *args], timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pip install 'facepipe[server]'" in " ".join(done.stderr.split())  # rich wraps long lines
    assert "Traceback" not in done.stderr


def test_bench_from_the_client_install(
    client_venv: Path, server: Running, lfw_dir: Path, tmp_path: Path
) -> None:
    image = sorted((lfw_dir / "images" / "Aaron_Sorkin").glob("*.jpg"))[0]
    cmd = [str(client_venv / "bin" / "facepipe"), "bench", "run", str(image), "--url", server.url]
    args = ["--protocol", "seed", "--concurrency", "1", "--duration", "1", "--warmup", "0"]
    done = _run([*cmd, *args, "--out", str(tmp_path / "r.json")], timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    (level,) = json.loads((tmp_path / "r.json").read_text())["levels"]
    assert level["qps"] > 0
