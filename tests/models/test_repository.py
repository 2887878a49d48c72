"""The repository's licence policy: ``face.pack: clean`` loads only commercially usable bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facepipe.errors import ModelError
from facepipe.models.bundle import MANIFEST, MODEL_FILE
from facepipe.models.packs import BLAZEFACE, DEFAULT
from facepipe.models.repository import Repository


def _bundle(root: Path, name: str, source: dict[str, object]) -> None:
    path = root / name / "1"
    path.mkdir(parents=True)
    (path / MODEL_FILE).write_bytes(b"")
    manifest = {"name": name, "version": 1, "role": "embedding", "inputs": [], "outputs": []}
    manifest["source"] = source
    (path / MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    _bundle(tmp_path, "cc0", {"licence": "CC0-1.0", "commercial": True})
    # the pinned MobileFaceNet file: research-only whatever its manifest says
    _bundle(tmp_path, "research", {"sha256": DEFAULT.models[0].sha256, "licence": "MIT", "commercial": True})
    # a BlazeFace bundle pulled before manifests recorded ``commercial``: judged by the pack table
    _bundle(tmp_path, "old-blazeface", {"sha256": BLAZEFACE.models[0].sha256, "licence": "Apache-2.0: ..."})
    _bundle(tmp_path, "imported", {"licence": ""})  # no terms declared: not commercial
    return tmp_path


def test_clean_refuses_non_commercial_bundles(root: Path) -> None:
    repo = Repository(root, clean=True)
    assert repo.bundle("cc0").manifest.name == "cc0"
    assert repo.bundle("old-blazeface").manifest.name == "old-blazeface"
    with pytest.raises(ModelError, match=r"'research'.*research-only \(MS-Celeb-1M derivative\).*face\.pack"):
        repo.bundle("research")
    with pytest.raises(ModelError, match="licence 'unknown' does not allow commercial use"):
        repo.bundle("imported")
    assert {n: repo.permitted(n) for n in ("cc0", "research", "old-blazeface", "imported", "absent")} == {
        "cc0": True,
        "research": False,
        "old-blazeface": True,
        "imported": False,
        "absent": False,
    }
    states = {e.name: (e.state, bool(e.reason)) for e in repo.index()}
    assert states == {
        "cc0": ("READY", False),
        "old-blazeface": ("READY", False),
        "research": ("UNAVAILABLE", True),
        "imported": ("UNAVAILABLE", True),
    }


def test_any_pack_loads_everything(root: Path) -> None:
    repo = Repository(root)
    for name in ("cc0", "research", "old-blazeface", "imported"):
        assert repo.permitted(name) and repo.bundle(name).manifest.name == name
    assert all(e.state == "READY" for e in repo.index())
