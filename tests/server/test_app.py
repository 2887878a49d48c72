"""Server wiring: what ``face.pack: clean`` does to a repository holding the default pack."""

from __future__ import annotations

from pathlib import Path

import pytest

from facepipe.config import parse_config
from facepipe.errors import ModelError
from facepipe.server.app import build_server


def test_clean_pack_refuses_to_serve_a_research_only_embedder(models_dir: Path, tmp_path: Path) -> None:
    config = parse_config({"face": {"pack": "clean"}, "gallery": {"enabled": False}})
    with pytest.raises(ModelError, match=r"'mobilefacenet': licence 'research-only \(MS-Celeb"):
        build_server(config, models_dir, tmp_path)


def test_any_pack_builds_the_same_server(models_dir: Path, tmp_path: Path) -> None:
    config = parse_config({"gallery": {"enabled": False}})
    assert build_server(config, models_dir, tmp_path) is not None
