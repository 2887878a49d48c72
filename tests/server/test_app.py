"""Server wiring: what ``face.pack: clean`` does to a repository holding the default pack."""

from __future__ import annotations

from pathlib import Path

import pytest

from facepipe.config import parse_config
from facepipe.errors import ModelError
from facepipe.models.bundle import Manifest
from facepipe.server.app import build_server, face_defaults, gallery_defaults


def test_clean_pack_refuses_to_serve_a_research_only_embedder(models_dir: Path, tmp_path: Path) -> None:
    config = parse_config({"face": {"pack": "clean"}, "gallery": {"enabled": False}})
    with pytest.raises(ModelError, match=r"'mobilefacenet': licence 'research-only \(MS-Celeb"):
        build_server(config, models_dir, tmp_path)


def test_any_pack_builds_the_same_server(models_dir: Path, tmp_path: Path) -> None:
    config = parse_config({"gallery": {"enabled": False}})
    assert build_server(config, models_dir, tmp_path) is not None


def test_thresholds_follow_the_embedder_unless_the_config_sets_them() -> None:
    own = {"verify_threshold": 0.91, "identify_threshold": 0.92}
    dlib_like = Manifest("e", 1, "embedding", [], [], extra=own)
    plain = parse_config({})
    assert face_defaults(plain, dlib_like).verify_threshold == 0.91
    assert gallery_defaults(plain, dlib_like).identify_threshold == 0.92
    assert face_defaults(plain, Manifest("m", 1, "embedding", [], [])).verify_threshold == 0.38
    set_both = parse_config({"face": {"verify_threshold": 0.5}, "gallery": {"identify_threshold": 0.7}})
    assert face_defaults(set_both, dlib_like).verify_threshold == 0.5
    assert gallery_defaults(set_both, dlib_like).identify_threshold == 0.7
