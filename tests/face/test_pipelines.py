"""The face DAG's join (branch results written into the photo's faces), and which crops /v1 can cut for
an embedder, from its manifest; the photo path's precision (``auto`` resolves per bundle behind MTCNN,
is fp32 behind BlazeFace: bf16 there lost more lfw-dev accuracy than allowed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facepipe.config import parse_config
from facepipe.face.faces import Face, Photo
from facepipe.face.pipelines import embed_spec, face_embed_op, join_op, path_spec, v1_alignment_problem
from facepipe.models.bundle import Bundle, Manifest, load_bundle
from facepipe.runtime import RuntimeSpec, precision_of


def photo(n: int) -> Photo:
    faces = [Face.make(np.array([0, 0, 10, 10]), 0.9, np.zeros((5, 2))) for _ in range(n)]
    return Photo(np.zeros((20, 20, 3), np.uint8), faces=faces)


def test_join_writes_builtin_branches_and_user_values() -> None:
    op = join_op(("embed", "liveness", "blur"), 2)
    p = photo(2)
    embs = [np.ones(4, np.float32), np.zeros(4, np.float32)]
    (out,) = op([(p, embs, [0.1, 0.7], [np.float32(3.5), 1.0])])
    assert out is p and p.faces[0].embedding is embs[0] and p.faces[1].liveness == 0.7
    assert p.faces[0].extra == {"blur": 3.5} and type(p.faces[0].extra["blur"]) is float


def test_join_skips_a_branch_that_did_not_run_and_names_a_wrong_count() -> None:
    p = photo(1)
    join_op(("embed", "liveness"), 2)([(p, [np.ones(2)], None)])  # liveness not asked for
    assert p.faces[0].embedding is not None and p.faces[0].liveness is None and p.faces[0].extra == {}
    q = photo(1)
    join_op(("embed", "liveness"), 1)([(q, [np.ones(2)], [0.3])])  # a user op that took the name
    assert q.faces[0].liveness is None and q.faces[0].extra == {"liveness": 0.3}
    (bad,) = join_op(("embed",), 1)([(photo(2), [np.ones(2)])])
    assert isinstance(bad, RuntimeError) and "face op embed gave 1 values for 2 faces" in str(bad)


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


def test_embed_precision_by_detector(models_dir: Path) -> None:
    bundle = load_bundle(models_dir / "mobilefacenet" / "1")
    config = parse_config({})  # precision: auto
    chosen = precision_of(bundle, RuntimeSpec(threads=2)).precision
    assert embed_spec(config, bundle, "mtcnn").precision == chosen
    assert embed_spec(config, bundle, "blazeface").precision == "fp32"
    forced = parse_config({"op": {"ArcFace": {"local_service_conf": {"precision": "bf16"}}}})
    assert embed_spec(forced, bundle, "blazeface").precision == "bf16"  # an explicit choice is kept


def test_detector_precision_by_detector() -> None:
    config = parse_config({})
    assert path_spec(config, "detect", "mtcnn").precision == "auto"  # resolved per net on open
    assert path_spec(config, "detect", "blazeface").precision == "fp32"
    assert path_spec(config, "detect", "blazeface_full").precision == "fp32"


def test_flip_average_is_the_mean_of_a_crop_and_its_mirror(models_dir: Path, lfw_dir: Path) -> None:
    """face.flip_average: each face's embedding is the unit-length mean of its crop's and its mirror
    image's, computed in the same model call as the plain ones."""
    bundle = load_bundle(models_dir / "mobilefacenet" / "1")
    crops = [
        cv2.resize(cv2.imread(str(p))[80:190, 70:180, ::-1], (112, 112))
        for p in sorted((lfw_dir / "images").glob("A*/*.jpg"))[:3]
    ]
    faces = [Face.make(np.array([0, 0, 10, 10]), 0.9, np.zeros((5, 2))) for _ in crops]
    for face, crop in zip(faces, crops, strict=True):
        face.crop = np.ascontiguousarray(crop)
    batch = [
        Photo(np.zeros((20, 20, 3), np.uint8), faces=faces[:2]),
        Photo(np.zeros((9, 9, 3), np.uint8), faces=faces[2:]),
    ]
    plain_op, flip_op = (
        face_embed_op(bundle, RuntimeSpec(precision="fp32")),
        face_embed_op(bundle, RuntimeSpec(precision="fp32"), True),
    )
    plain_op.setup()
    flip_op.setup()
    plain = [e for p in plain_op(batch) for e in p]
    flipped = [e for p in flip_op(batch) for e in p]
    mirror = plain_op.embed([np.ascontiguousarray(c[:, ::-1]) for c in crops])
    for a, m, got in zip(plain, mirror, flipped, strict=True):
        want = (a + m) / np.linalg.norm(a + m)
        assert got.dtype == np.float32 and np.allclose(got, want, atol=1e-5)
        assert np.isclose(np.linalg.norm(got), 1.0, atol=1e-5) and float(a @ got) < 0.9999


def test_join_writes_the_quality_branch() -> None:
    from facepipe.face.quality import Quality

    p = photo(1)
    q = Quality(0.8, {"sharpness": 1.0})
    join_op(("embed", "quality"), 2)([(p, [np.ones(2)], [q])])
    assert p.faces[0].quality is q and p.faces[0].extra == {}
