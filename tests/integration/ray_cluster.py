"""A real Ray cluster on this host for the Ray Serve tests, started with README's "Scaling out" commands:
a head node and two worker nodes (each a raylet of its own), loopback only, small object stores.

Only the addresses and paths of the README's lines change (a free port for 6379 and for the HTTP and
gRPC ports, the test's config and model repository). Its processes are found by the session they
belong to and ended by their ids (never ``ray stop``, which ends every Ray on the host).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.chaos import cmdline

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def readme_commands() -> list[str]:
    """The command lines of README's "Scaling out" shell block, comments and blank lines left out."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Scaling out", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    if block is None:
        raise AssertionError("README's Scaling out section has no ```sh block")
    lines = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(roots: list[int]) -> list[int]:
    """``roots`` and every process below them."""
    found, pids = list(roots), _pids()
    parents = {p: _parent(p) for p in pids}
    grew = True
    while grew:
        more = [p for p in pids if parents[p] in found and p not in found]
        found += more
        grew = bool(more)
    return found


@dataclass
class Cluster:
    gcs: str  # host:port of the head
    env: dict[str, str]
    log: Path
    session: str = ""
    ours: list[int] = field(default_factory=list)  # every process of the cluster, by id

    def run(self, line: str, timeout: float = 180) -> str:
        if line.startswith("export "):  # README's lines share one shell: its exports hold for the rest
            self.env.update(exported(line))
            return ""
        out = subprocess.run(
            ["bash", "-c", line], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        with self.log.open("a") as f:
            f.write(f"$ {line}\n{out.stdout}\n{out.stderr}\n")
        if out.returncode != 0:
            raise AssertionError(f"{line!r} failed ({out.returncode}): {out.stderr[-3000:]}")
        return out.stdout

    def find_session(self) -> None:
        """The session the head started (its gcs_server names it), so that its processes are ours."""
        port = self.gcs.rsplit(":", 1)[1]
        for pid in _pids():
            cmd = cmdline(pid)
            if "gcs_server" in cmd and f"--gcs_server_port={port}" in cmd:
                self.session = re.findall(r"(session_[0-9_-]+)", cmd)[0]
                return
        raise AssertionError(f"no gcs_server on port {port}")

    def processes(self) -> list[int]:
        """Every process of this cluster: those naming its session or its head's address (Ray's
        client server), and everything under them; never this test process."""
        port = self.gcs.rsplit(":", 1)[1]

        def ours(cmd: str) -> bool:
            return bool(self.session and self.session in cmd) or ("--address=" in cmd and f":{port} " in cmd)

        roots = [p for p in _pids() if p != os.getpid() and ours(cmdline(p))]
        return [p for p in descendants(roots) if p != os.getpid()]

    def kill_node(self, raylet_socket: str) -> list[int]:
        """SIGKILL one node: its raylet and every process under it (its workers, replicas, proxy)."""
        raylet = [p for p in _pids() if f"--raylet_socket_name={raylet_socket} " in cmdline(p)]
        if not raylet:
            raise AssertionError(f"no raylet with socket {raylet_socket}")
        victims = descendants(raylet)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        return victims

    def stop(self) -> None:
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)


def environment(extra_path: str, fast_metrics: bool = True) -> dict[str, str]:
    """The commands' environment: this venv's executables first, this tree's sources importable by
    every Ray worker (they inherit it from ``ray start``); ``fast_metrics``: Ray's metrics agents
    report every second (the tests read them back) instead of Ray's default 10 s."""
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": extra_path,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    return env | {"RAY_metrics_report_interval_ms": "1000"} if fast_metrics else env


def exported(line: str) -> dict[str, str]:
    """The variables a shell ``export A=1 B=2`` line sets."""
    return dict(kv.split("=", 1) for kv in shlex.split(line)[1:])
