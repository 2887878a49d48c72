"""The quality score: each signal on its own, then the whole score on a real lfw-dev face degraded on
purpose (blur, downscale, in-plane roll, an approximated yaw: bench/degrade.py), through the real MTCNN
detector and alignment."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench import degrade
from facepipe.face.align import ARCFACE_5, align
from facepipe.face.decode import decode_image
from facepipe.face.detect_mtcnn import MtcnnDetector
from facepipe.face.faces import DetectParams, Face, Photo, keep_faces
from facepipe.face.quality import RAMPS, QualityOp, Ramp, head_pose, measure, sharpness
from facepipe.models.repository import Repository


def test_ramp_is_linear_between_bad_and_good_either_way() -> None:
    assert Ramp(0, 10)(5) == 0.5 and Ramp(0, 10)(-1) == 0 and Ramp(0, 10)(11) == 1
    assert Ramp(60, 20)(40) == 0.5 and Ramp(60, 20)(10) == 1 and Ramp(60, 20)(90) == 0


def rotated(points: np.ndarray, degrees: float) -> np.ndarray:
    t = np.radians(degrees)
    m = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return (points - points.mean(0)) @ m.T + 200


def test_head_pose_of_the_template_is_frontal_and_roll_is_the_eye_line() -> None:
    yaw, pitch, roll = head_pose(ARCFACE_5)
    assert abs(yaw) < 1 and abs(pitch) < 1 and abs(roll) < 1
    for angle in (-30.0, 15.0, 50.0):
        y, p, r = head_pose(rotated(ARCFACE_5, angle))
        assert r == pytest.approx(angle + roll, abs=0.01) and abs(y) < 1 and abs(p) < 1


def test_head_pose_reads_a_shifted_nose_as_yaw_and_a_raised_nose_as_pitch() -> None:
    turned, tilted = ARCFACE_5.copy(), ARCFACE_5.copy()
    turned[2, 0] += 0.2 * 35.2  # nose 0.2 inter-ocular distances towards the right eye
    tilted[2, 1] -= 8  # nose nearer the eye line: the head tilted back
    assert head_pose(turned)[0] == pytest.approx(np.degrees(np.arctan(0.2 / 0.4)), abs=1.5)
    assert head_pose(tilted)[1] > 15 and abs(head_pose(tilted)[0]) < 1
    assert head_pose(ARCFACE_5[[0, 1, 2, 3]])[1] != 0  # 4 points: the 4th is read as the mouth centre


@pytest.fixture(scope="module")
def detector(models_dir: Path) -> MtcnnDetector:
    repo = Repository(models_dir)
    return MtcnnDetector(repo.bundle("mtcnn-pnet"), repo.bundle("mtcnn-rnet"), repo.bundle("mtcnn-onet"))


@pytest.fixture(scope="module")
def real_face(lfw_dir: Path, lfw_landmarks: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The first lfw-dev image whose reference landmarks say near frontal and upright."""
    for name in sorted(lfw_landmarks):
        yaw, pitch, roll = head_pose(lfw_landmarks[name])
        if abs(yaw) < 8 and abs(roll) < 4 and abs(pitch) < 15:
            return decode_image((lfw_dir / "images" / name).read_bytes()), lfw_landmarks[name]
    raise AssertionError("no frontal face in lfw-dev")


def test_sharpness_falls_with_blur_on_a_real_crop(real_face: tuple[np.ndarray, np.ndarray]) -> None:
    image, marks = real_face
    values = [sharpness(align(degrade.blur(image, s), marks)) for s in (0, 1, 2, 3, 5)]
    assert all(b < a for a, b in itertools.pairwise(values)), values
    assert sharpness(np.full((112, 112, 3), 90, np.uint8)) == 0.0  # flat: no contrast, no detail


def detected(detector: MtcnnDetector, image: np.ndarray) -> Face | None:
    params = DetectParams(min_face_size=20)
    faces = keep_faces(detector.detect([image], [params])[0], params)
    if not faces:
        return None
    faces[0].crop = align(image, faces[0].landmarks)
    return faces[0]


def scores(detector: MtcnnDetector, images: list[np.ndarray]) -> list[float]:
    found = [detected(detector, im) for im in images]
    return [0.0 if f is None else measure(f).score for f in found]


@pytest.mark.parametrize(
    ("name", "levels", "signal"),
    [
        ("blur", (0.0, 2.5, 4.0, 6.0), "sharpness"),
        ("downscale", (1.0, 0.5, 0.35, 0.25), "size"),
        ("roll", (0.0, 25.0, 35.0, 45.0), "roll"),
        ("yaw", (0.0, 25.0, 35.0, 45.0), "yaw"),
    ],
)
def test_score_falls_monotonically_as_a_real_face_is_degraded(
    detector: MtcnnDetector, real_face: tuple[np.ndarray, np.ndarray], name: str, levels: tuple, signal: str
) -> None:
    image, marks = real_face
    fn = degrade.DEGRADATIONS[name][0]
    images = [fn(image, x, marks) if name == "yaw" else fn(image, x) for x in levels]  # type: ignore[operator]
    got = scores(detector, images)
    assert all(b <= a for a, b in itertools.pairwise(got)) and got[-1] < got[0] - 0.2, (name, got)
    worst = detected(detector, images[-1])
    if worst is not None:  # the signal the degradation acts on is the one a refusal names
        assert measure(worst).weakest() == signal


def test_a_refusal_names_the_weakest_signal_with_its_value_and_range() -> None:
    face = Face((0, 0, 30, 30), 0.99, ARCFACE_5.astype(np.float32), crop=np.zeros((112, 112, 3), np.uint8))
    q = measure(face)
    assert q.signals["size"] == 30 and q.signals["sharpness"] == 0.0 and q.score == 0.0
    assert q.weakest() == "sharpness"
    text = q.reason(0.4)
    assert "below min_quality 0.4" in text and "weakest signal: sharpness 0" in text
    assert RAMPS["sharpness"].describe() in text
    assert set(q.as_json()) == {"score", *RAMPS}


def test_the_op_gives_one_quality_per_face_of_each_photo(real_face: tuple[np.ndarray, np.ndarray]) -> None:
    image, marks = real_face
    face = Face((60, 60, 190, 190), 0.999, marks.astype(np.float32), crop=align(image, marks))
    photos = [Photo(image, faces=[face, face]), Photo(cv2.flip(image, 1))]
    out = QualityOp()(photos)
    assert [len(x) for x in out] == [2, 0] and out[0][0].score > 0.5
