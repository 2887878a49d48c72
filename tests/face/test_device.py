"""The photo path's device ops (face/device.py, face/device_ops.py) against the CPU path they replace.

Each test runs on CPU torch (CI) and, where CUDA is present, on the GPU too (bench/gpu_photos.py runs
this file on the device and records its output); the nvJPEG test runs where torchvision is installed.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'facepipe[gpu]')")
from facepipe.face import device  # noqa: E402
from facepipe.face.align import ARCFACE_5, align, similarity_transform  # noqa: E402
from facepipe.face.decode import DecodeLimits, decode_image  # noqa: E402
from facepipe.face.detect_blazeface import _square  # noqa: E402
from facepipe.face.device_ops import DeviceAlignOp, DeviceDecodeOp, DevicePhotoDecodeOp  # noqa: E402
from facepipe.face.faces import DetectParams, Face, Photo  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _photos(lfw_dir: Path, n: int) -> list[np.ndarray]:
    files = sorted((lfw_dir / "images").glob("*/*.jpg"))[:n]
    return [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]


def _jpeg(img: np.ndarray) -> bytes:
    return bytes(
        cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])[1]
    )


@pytest.mark.parametrize("where", DEVICES)
def test_warp_crops_match_cv2_warp_affine(where: str, lfw_dir: Path) -> None:
    rng = np.random.default_rng(7)
    images = [*_photos(lfw_dir, 4), rng.integers(0, 256, (97, 211, 3), dtype=np.uint8)]
    owner, matrices = [], []
    for k, img in enumerate(images):
        for _ in range(4):  # faces of any size and place, some half outside the image (black border)
            h, w = img.shape[:2]
            pts = (
                ARCFACE_5 * rng.uniform(0.4, 2.5) + rng.uniform(-80, max(h, w), 2) + rng.normal(0, 3, (5, 2))
            )
            matrices.append(similarity_transform(pts, ARCFACE_5))
            owner.append(k)
    tensors = [torch.from_numpy(i).to(where) for i in images]
    got = device.warp_crops(tensors, owner, np.stack(matrices), 112).cpu().numpy()
    want = np.stack(
        [
            cv2.warpAffine(images[o], m, (112, 112), borderValue=0)
            for o, m in zip(owner, matrices, strict=True)
        ]
    )
    diff = np.abs(got.astype(np.int16) - want)
    print(f"warp {where}: max |diff| {diff.max()}, pixels differing {np.mean(diff > 0):.2e}")
    assert diff.max() <= 1 and np.mean(diff > 0) < 1e-3  # float rounding at .5 only
    assert device.warp_crops(tensors, [], np.zeros((0, 2, 3)), 112).shape == (0, 112, 112, 3)


@pytest.mark.parametrize("where", DEVICES)
def test_area_square_matches_blazeface_input(where: str, lfw_dir: Path) -> None:
    rng = np.random.default_rng(3)
    images = _photos(lfw_dir, 3) + [
        rng.integers(0, 256, s, dtype=np.uint8) for s in ((301, 177, 3), (128, 640, 3))
    ]
    for img in images:
        got = device.area_square(torch.from_numpy(img).to(where), 128).cpu().numpy()
        diff = np.abs(got.astype(np.int16) - _square(img))
        assert diff.max() <= 1 and np.mean(diff > 0) < 1e-3, img.shape
    small = torch.zeros((60, 90, 3), dtype=torch.uint8)
    with pytest.raises(ValueError, match="shrinks only"):
        device.area_square(small, 128)
    both = device.device_squares([small, torch.from_numpy(images[0])], 128, _square)
    assert both.shape == (2, 128, 128, 3) and np.array_equal(both[0].numpy(), _square(small.numpy()))


def test_device_crops_resize_like_cv2_linear() -> None:
    rng = np.random.default_rng(5)
    crop = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
    same = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    out = device.device_crops([torch.from_numpy(crop), torch.from_numpy(same)], [112, 112]).numpy()
    assert np.array_equal(out[1], same)
    diff = np.abs(out[0].astype(np.int16) - cv2.resize(crop, (112, 112), interpolation=cv2.INTER_LINEAR))
    assert diff.max() <= 2 and diff.mean() < 0.5


def _with_orientation(jpeg: bytes, value: int) -> bytes:
    """``jpeg`` with an EXIF APP1 segment (big-endian TIFF, one IFD0 entry: orientation) after SOI."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, value, 0) + struct.pack(">I", 0)
    body = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def test_exif_orientation_is_read_from_the_header() -> None:
    jpeg = _jpeg(np.zeros((20, 30, 3), np.uint8))
    assert device.exif_orientation(jpeg) == 1
    assert device.exif_orientation(_with_orientation(jpeg, 6)) == 6
    assert device.exif_orientation(_with_orientation(jpeg, 1)) == 1
    assert device.exif_orientation(b"\xff\xd8\xff\xe1\x00\x08Exif\x00\x00") == 1  # truncated: none


@pytest.mark.parametrize("where", DEVICES)
def test_decode_op_on_the_device(where: str, lfw_dir: Path) -> None:
    """nvJPEG where torchvision and CUDA are there (within a JPEG decoder's rounding of OpenCV's
    bytes), else OpenCV and an upload; rotated, PNG and bad files each as OpenCV decodes them or fail
    alone."""
    images = _photos(lfw_dir, 6)
    blobs = [_jpeg(i) for i in images]
    rotated = _with_orientation(blobs[0], 6)
    png = bytes(cv2.imencode(".png", images[1])[1])
    op = DeviceDecodeOp(DecodeLimits(), where)
    op.setup()
    out = op([*blobs, rotated, png, b"not an image", b""])
    for got, blob in zip(out[: len(blobs)], blobs, strict=True):
        assert isinstance(got, torch.Tensor) and got.device.type == where
        diff = np.abs(got.cpu().numpy().astype(np.int16) - decode_image(blob))
        if not op.nvjpeg:
            assert diff.max() == 0  # OpenCV's own bytes, uploaded
        print(f"nvJPEG {where}: max |diff| {diff.max()}, mean {diff.mean():.3f}, >2: {np.mean(diff > 2):.2e}")
        assert diff.mean() < 1.5  # IDCT and chroma upsampling differ between decoders, not the picture
    assert np.array_equal(out[len(blobs)].cpu().numpy(), decode_image(rotated))  # EXIF: OpenCV applies it
    assert out[len(blobs)].shape[:2] == images[0].shape[:2][::-1]
    assert np.array_equal(out[len(blobs) + 1].cpu().numpy(), decode_image(png))
    assert [type(e).__name__ for e in out[-2:]] == ["UnsupportedMediaType", "InvalidInput"]
    print(f"decode {where}: nvJPEG used: {op.nvjpeg}")


@pytest.mark.parametrize("where", DEVICES)
def test_photo_decode_and_align_ops(where: str, lfw_dir: Path, lfw_landmarks: dict[str, np.ndarray]) -> None:
    names = sorted(lfw_landmarks)[:5]
    images = [cv2.cvtColor(cv2.imread(str(lfw_dir / "images" / n)), cv2.COLOR_BGR2RGB) for n in names]
    decode = DevicePhotoDecodeOp(DecodeLimits(), where)
    decode.setup()
    params = DetectParams(max_faces=1)
    photos = decode([(_jpeg(i), params, f"p{k}") for k, i in enumerate(images)])
    assert [p.label for p in photos] == [f"p{k}" for k in range(5)] and photos[0].params == params
    for photo, name in zip(photos, names, strict=True):
        pts = lfw_landmarks[name]
        photo.faces = [Face((0, 0, 1, 1), 1.0, pts), Face((0, 0, 1, 1), 1.0, pts[:4])]  # 5 and 4 points
    photos[2].faces = []  # a photo without faces keeps none
    aligner = DeviceAlignOp(where)
    aligner.setup()
    out = aligner(photos)
    for photo in out:
        host = photo.image.cpu().numpy()
        for face in photo.faces:
            want = align(host, face.landmarks)
            assert face.crop is not None and isinstance(face.crop, np.ndarray)
            assert np.abs(face.crop.astype(np.int16) - want).max() <= 1
            assert np.array_equal(face.device_crop.cpu().numpy(), face.crop)
    assert out[2].faces == [] and aligner([Photo(images[0])])[0].faces == []
