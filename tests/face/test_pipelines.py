"""Which crops /v1 can cut for an embedder, from its manifest."""

from __future__ import annotations

from pathlib import Path

from facepipe.face.pipelines import v1_alignment_problem
from facepipe.models.bundle import Bundle, Manifest


def _bundle(path: Path, extra: dict) -> Bundle:
    return Bundle(path, Manifest("emb", 1, "embedding", [], [], extra=extra))


def test_arcface_crops_by_default(tmp_path: Path) -> None:
    assert v1_alignment_problem(_bundle(tmp_path, {})) == ""


def test_dlib_chips_need_the_shape_predictor_in_the_bundle(tmp_path: Path) -> None:
    extra = {"alignment": "dlib-5point-chip", "landmarks": {"file": "landmarks.npz"}}
    assert "cannot cut" in v1_alignment_problem(_bundle(tmp_path, extra))
    (tmp_path / "landmarks.npz").write_bytes(b"")
    assert v1_alignment_problem(_bundle(tmp_path, extra)) == ""
    assert "cannot cut" in v1_alignment_problem(_bundle(tmp_path, {"alignment": "something-else"}))
