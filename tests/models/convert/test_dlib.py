"""dlib's face ResNet read by facepipe's own reader and run as ONNX, against dlib-bin itself."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from facepipe.errors import ConversionError
from facepipe.face.embed import to_tensor
from facepipe.models.bundle import Bundle, Source, load_bundle
from facepipe.models.convert.dlib import INPUT, install_dlib_embedder, read_dlib
from facepipe.models.convert.dlib_net import face_resnet_spec, read_net
from facepipe.models.convert.dlib_stream import DlibStream
from facepipe.models.pull import golden_check

EMBEDDER = "dlib_face_recognition_resnet_model_v1.dat"


def test_integers_as_dlib_packs_them() -> None:
    # control byte: bit 7 = negative, low nibble = byte count; magnitude little-endian
    s = DlibStream(bytes([0x01, 0x00, 0x81, 0x05, 0x02, 0x00, 0x01, 0x88] + [0xFF] * 7 + [0x7F]))
    assert [s.read_int(), s.read_int(), s.read_int(), s.read_int()] == [0, -5, 256, -(2**63 - 1)]
    assert s.at_end()


def test_floats_are_mantissa_then_exponent() -> None:
    # 0.6f as dlib writes it: mantissa 0x99999a, exponent -24 (from the face model's loss layer)
    s = DlibStream(bytes([0x03, 0x9A, 0x99, 0x99, 0x81, 0x18, 0x01, 0x00, 0x02, 0x00, 0x7D]))
    assert s.read_float() == np.float32(0.6)
    assert s.read_float() == math.inf  # exponent 32000 marks +inf


def test_old_ascii_floats_and_bad_bytes_are_refused() -> None:
    with pytest.raises(ConversionError, match="old ASCII"):
        DlibStream(b"0.5 ").read_float()
    with pytest.raises(ConversionError, match="control byte"):
        DlibStream(bytes([0x09, 0, 0])).read_int()
    with pytest.raises(ConversionError, match="bool"):
        DlibStream(b"x").read_bool()


def test_tensor_reads_float32_data() -> None:
    data = np.arange(6, dtype="<f4")
    raw = bytes([0x01, 0x02, 0x01, 0x01, 0x01, 0x02, 0x01, 0x01, 0x01, 0x03]) + data.tobytes()
    t = DlibStream(raw).tensor()
    assert t.shape == (1, 2, 1, 3)
    np.testing.assert_array_equal(t.ravel(), data)


def test_reads_the_whole_face_model(dlib_models: Path) -> None:
    net = read_dlib(dlib_models / EMBEDDER)
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds[-1] == "fc"
    assert net.input["nr"] == net.input["nc"] == 150
    assert net.input["avg_rgb"] == pytest.approx([122.782, 117.001, 104.298], abs=1e-4)
    assert net.loss["distance_threshold"] == pytest.approx(0.6)
    assert net.layers[-1].weights["W"].shape == (256, 128)


def test_truncated_or_padded_files_are_refused(dlib_models: Path) -> None:
    data = (dlib_models / EMBEDDER).read_bytes()
    with pytest.raises(ConversionError, match="stream ends"):
        read_net(data[: len(data) // 2], face_resnet_spec())
    with pytest.raises(ConversionError, match="bytes left"):
        read_net(data + b"\x00", face_resnet_spec())


def test_a_file_of_another_network_is_refused(dlib_models: Path) -> None:
    # the CNN face detector is a dlib dnn too, of another type: the reader must say so, not misread it
    with pytest.raises(ConversionError, match="loss_mmod"):
        read_dlib(dlib_models / "mmod_human_face_detector.dat")


@pytest.fixture(scope="module")
def bundle(dlib_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    source = Source("face_recognition_models==0.3.0", EMBEDDER, "", "CC0-1.0")
    root = tmp_path_factory.mktemp("models")
    landmarks = dlib_models / "shape_predictor_5_face_landmarks.dat"
    install_dlib_embedder(dlib_models / EMBEDDER, root, "dlib-resnet", source, landmarks)
    return load_bundle(root / "dlib-resnet" / "1")


def test_bundle_manifest(bundle: Bundle) -> None:
    m = bundle.manifest
    assert (m.role, m.embedding_dim, m.normalized, m.source.licence) == ("embedding", 128, False, "CC0-1.0")
    assert m.inputs[0].layout == "NCHW" and m.inputs[0].shape == [-1, 3, 150, 150]
    assert m.preprocess.size == [150, 150] and m.preprocess.std == [256.0] * 3
    assert golden_check(bundle.path) < 1e-5
    assert m.extra["alignment"] == "dlib-5point-chip" and m.extra["verify_threshold"] == 0.91
    assert (bundle.path / m.extra["landmarks"]["file"]).is_file() and m.extra["landmarks"]["parts"] == 5


def test_parity_with_dlib_on_real_faces(
    bundle: Bundle, dlib_models: Path, dlib_faces: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]
) -> None:
    """The installed bundle, fed through facepipe's own preprocessing, against dlib on the same chips."""
    import dlib

    sess = ort.InferenceSession(str(bundle.model_path), providers=["CPUExecutionProvider"])
    rec = dlib.face_recognition_model_v1(str(dlib_models / EMBEDDER))
    chips = [chip for *_, chip in dlib_faces]
    got = sess.run(None, {INPUT: to_tensor(chips, bundle)})[0].astype(np.float64)  # one batch of 12
    want = np.array([rec.compute_face_descriptor(chip) for chip in chips], dtype=np.float64)
    cosines = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert len(chips) == 12
    assert cosines.min() >= 0.99999, dict(zip([f for f, *_ in dlib_faces], cosines, strict=True))
    assert np.abs(got - want).max() < 1e-5
