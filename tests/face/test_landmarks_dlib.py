"""dlib's 5-point landmarks in numpy, against dlib-bin's shape_predictor; then the whole clean chain
(landmarks -> chip -> converted embedder) against dlib's compute_face_descriptor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from facepipe.face.align import dlib_chip
from facepipe.face.landmarks_dlib import HOG_BOX, DlibChipOp, hog_box, intensity, predict
from facepipe.models.convert.dlib import INPUT, dlib_to_onnx, read_dlib
from facepipe.models.convert.dlib_shape import ShapeModel, load_shape_model, shape_arrays

SP5 = "shape_predictor_5_face_landmarks.dat"


def _boxes(images: list[np.ndarray]) -> list[tuple[np.ndarray, object]]:
    import dlib

    detector = dlib.get_frontal_face_detector()
    return [(img, det) for img in images for det in list(detector(img, 0))[:2]]


def _box(det: object) -> tuple[int, int, int, int]:
    return (det.left(), det.top(), det.right(), det.bottom())  # type: ignore[attr-defined]


def test_intensity_is_dlibs_integer_mean() -> None:
    px = np.array([[[255, 255, 254], [1, 1, 2]]], np.uint8)
    assert intensity(px).tolist() == [[254.0, 1.0]]


def test_landmarks_are_dlibs_own(
    dlib_shape_model: ShapeModel,
    dlib_models: Path,
    dlib_faces: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    photos_dir: Path,
) -> None:
    """Same integer landmarks as dlib on 12 LFW faces and the faces of 4 large photos."""
    import dlib

    predictor = dlib.shape_predictor(str(dlib_models / SP5))
    names = ("img5.jpg", "img11.jpg", "img6.jpg", "img18.jpg")
    photos = [dlib.load_rgb_image(str(photos_dir / n)) for n in names]
    cases = _boxes([img for _, img, _, _ in dlib_faces] + photos)
    assert len(cases) >= 16
    for img, det in cases:
        want = np.array([[p.x, p.y] for p in predictor(img, det).parts()], dtype=np.float64)
        np.testing.assert_array_equal(predict(dlib_shape_model, img, _box(det)), want)


def test_clean_chain_matches_dlib_descriptor(
    dlib_shape_model: ShapeModel,
    dlib_models: Path,
    dlib_faces: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
) -> None:
    """A face box in, dlib's descriptor out, with no dlib code: facepipe's landmarks, chip and model."""
    import dlib

    net = read_dlib(dlib_models / "dlib_face_recognition_resnet_model_v1.dat")
    sess = ort.InferenceSession(dlib_to_onnx(net).SerializeToString(), providers=["CPUExecutionProvider"])
    rec = dlib.face_recognition_model_v1(str(dlib_models / "dlib_face_recognition_resnet_model_v1.dat"))
    predictor = dlib.shape_predictor(str(dlib_models / SP5))
    mean = np.asarray(net.input["avg_rgb"], np.float32)
    for img, det in _boxes([img for _, img, _, _ in dlib_faces])[:6]:
        chip = dlib_chip(img, predict(dlib_shape_model, img, _box(det)))
        x = ((chip.astype(np.float32) - mean) / 256).transpose(2, 0, 1)[None]
        got = sess.run(None, {INPUT: np.ascontiguousarray(x)})[0][0].astype(np.float64)
        want = np.array(rec.compute_face_descriptor(img, predictor(img, det)), dtype=np.float64)
        assert got @ want / np.linalg.norm(got) / np.linalg.norm(want) >= 0.99999


def test_arrays_round_trip(dlib_shape_model: ShapeModel, tmp_path: Path, dlib_faces: list) -> None:
    """The arrays a bundle stores give the same landmarks as the model read from dlib's file."""
    np.savez(tmp_path / "lm.npz", **shape_arrays(dlib_shape_model))
    loaded = load_shape_model(tmp_path / "lm.npz")
    _, img, _, _ = dlib_faces[0]
    for box in ((60, 60, 190, 190), (70, 80, 170, 180)):
        np.testing.assert_array_equal(predict(loaded, img, box), predict(dlib_shape_model, img, box))


def test_hog_box_moves_and_scales_the_detector_box() -> None:
    dx, dy, side = HOG_BOX["blazeface"]
    left, top, right, bottom = hog_box((100.0, 100.0, 200.0, 200.0), "blazeface")
    assert (left + right) / 2 == pytest.approx(150 + 100 * dx, abs=0.5)
    assert (top + bottom) / 2 == pytest.approx(150 + 100 * dy, abs=0.5)
    assert right - left == pytest.approx(100 * side, abs=1)


@pytest.mark.parametrize(
    ("detector_name", "bundle"), [("blazeface", "blazeface"), ("blazeface_full", "blazeface-full")]
)
def test_chip_op_from_blazeface_boxes(
    models_dir: Path,
    dlib_models: Path,
    dlib_shape_model: ShapeModel,
    tmp_path: Path,
    dlib_faces: list,
    detector_name: str,
    bundle: str,
) -> None:
    """BlazeFace boxes (short- or full-range) -> dlib landmarks -> chips that embed like the chips from
    dlib's own HOG boxes."""
    from facepipe.face.detect_blazeface import BlazeFaceOp
    from facepipe.face.faces import DetectParams, Photo
    from facepipe.models.bundle import load_bundle

    if not (models_dir / bundle / "1").is_dir():
        pytest.skip(f"{bundle} is not installed: run `facepipe models pull {bundle}`")
    detector = BlazeFaceOp(load_bundle(models_dir / bundle / "1"))
    detector.setup()
    np.savez(tmp_path / "lm.npz", **shape_arrays(dlib_shape_model))
    chipper = DlibChipOp(tmp_path / "lm.npz", detector_name)
    chipper.setup()
    photos = detector([Photo(img, DetectParams(min_face_size=40)) for _, img, _, _ in dlib_faces])
    photos = chipper(photos)
    net = read_dlib(dlib_models / "dlib_face_recognition_resnet_model_v1.dat")
    sess = ort.InferenceSession(dlib_to_onnx(net).SerializeToString(), providers=["CPUExecutionProvider"])
    mean = np.asarray(net.input["avg_rgb"], np.float32)

    def embed(chip: np.ndarray) -> np.ndarray:
        x = ((chip.astype(np.float32) - mean) / 256).transpose(2, 0, 1)[None]
        out = sess.run(None, {INPUT: np.ascontiguousarray(x)})[0][0].astype(np.float64)
        return out / np.linalg.norm(out)

    cosines = []
    for photo, (_, _, _, dlib_own_chip) in zip(photos, dlib_faces, strict=True):
        if not photo.faces:
            continue
        face = max(photo.faces, key=lambda f: f.area)
        assert face.crop is not None and face.crop.shape == (150, 150, 3)
        cosines.append(float(embed(face.crop) @ embed(dlib_own_chip)))
    assert len(cosines) >= 10
    assert np.mean(cosines) >= 0.99 and min(cosines) >= 0.95, cosines
