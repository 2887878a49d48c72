"""dlib's 5-point landmarks in numpy, against dlib-bin's shape_predictor; then the whole clean chain
(landmarks -> chip -> converted embedder) against dlib's compute_face_descriptor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from facepipe.face.align import dlib_chip
from facepipe.face.landmarks_dlib import intensity, predict
from facepipe.models.convert.dlib import INPUT, dlib_to_onnx, read_dlib
from facepipe.models.convert.dlib_shape import ShapeModel

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
