"""A real server on 127.0.0.1, started as a subprocess with the real models."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_embedding(url: str, img_b64: str) -> np.ndarray:
    """The embedding of one base64 image through the seed endpoint (JSON numbers)."""
    body = {"key": ["image"], "value": [img_b64]}
    r = httpx.post(url + "/ArcFace/prediction?format=json", json=body, timeout=60).json()
    assert r["err_no"] == 0, r
    return np.asarray(r["value"][0], np.float32).ravel()


@dataclass
class Running:
    url: str
    port: int
    grpc: str  # host:port of the gRPC edge
    proc: subprocess.Popen[bytes]
    log_dir: Path


def start_server(models_dir: Path, tmp: Path, extra: dict | None = None, ready_s: float = 60) -> Running:
    port, rpc_port = free_port(), free_port()
    cfg = {
        "http_port": port,
        "rpc_port": rpc_port,
        "max_body_bytes": 6_000_000,
        "log_dir": str(tmp / "PipelineServingLogs"),
        "dag": {"tracer": {"interval_s": 0.5}, "channel_size": 64},
        "op": {"ArcFace": {"concurrency": 2, "batch_size": 8, "auto_batching_timeout": 1}},
        **(extra or {}),
    }
    (tmp / "config.yml").write_text(yaml.safe_dump(cfg))
    return launch(["--config", str(tmp / "config.yml"), "--models", str(models_dir)], tmp, cfg, ready_s)


def launch(
    args: list[str], tmp: Path, cfg: dict, ready_s: float = 60, cwd: Path | None = None, script: bool = False
) -> Running:
    """``facepipe serve ARGS --data TMP/data`` (``script``: ``python ARGS``, the data folder from the
    environment) on ``cfg``'s ports; returns once it is ready."""
    port, rpc_port = cfg["http_port"], cfg["rpc_port"]
    serve = ["-m", "facepipe.cli", "serve", *args, "--data", str(tmp / "data")]
    cmd = [sys.executable, *(args if script else serve)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FACEPIPE_DATA": str(tmp / "data")}
    with (tmp / "server.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(tmp / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return Running(url, port, f"127.0.0.1:{rpc_port}", proc, Path(cfg["log_dir"]))
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not become ready in {ready_s:.0f} s")


def stop_server(running: Running) -> int:
    if running.proc.poll() is None:
        running.proc.send_signal(signal.SIGTERM)
    return running.proc.wait(timeout=60)


@pytest.fixture(scope="session")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_server(models_dir, tmp_path_factory.mktemp("server"))
    yield running
    stop_server(running)


def private_repository(models_dir: Path, root: Path) -> Path:
    """A model repository of our own: every model linked to the real one, ``mobilefacenet`` as a real
    folder (version 1 linked) so that versions can be added to it."""
    root.mkdir(parents=True, exist_ok=True)
    for d in models_dir.iterdir():
        if d.is_dir() and not d.name.startswith(".") and d.name != "mobilefacenet":
            (root / d.name).symlink_to(d.resolve())
    (root / "mobilefacenet").mkdir()
    (root / "mobilefacenet" / "1").symlink_to((models_dir / "mobilefacenet" / "1").resolve())
    return root


def add_version(repo: Path, version: int, broken: bool = False) -> Path:
    """``mobilefacenet`` version ``version``: a copy of version 1 (``broken``: its golden outputs
    negated, so the self-test must reject it)."""
    import json

    import numpy as np

    src, dst = repo / "mobilefacenet" / "1", repo / "mobilefacenet" / f".tmp{version}"
    shutil.copytree(src.resolve(), dst)
    manifest = json.loads((dst / "bundle.json").read_text())
    (dst / "bundle.json").write_text(json.dumps(manifest | {"version": version}))
    if broken:
        golden = dict(np.load(dst / "golden.npz"))
        np.savez(dst / "golden.npz", **{k: -v if k.startswith("output") else v for k, v in golden.items()})
    final = repo / "mobilefacenet" / str(version)
    dst.rename(final)  # appears complete, in one step, to a polling server
    return final


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Each phase's report on the test item (``item.rep_call``), for fixtures that keep evidence of a
    failure (the web UI tests' screenshots)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
