"""Image decoding: header sniffing and sizes without decoding, EXIF orientation, and a property test:
any bytes in, an RGB image or one of the three input errors out (never anything else)."""

from __future__ import annotations

import contextlib
import struct

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facepipe.errors import InvalidInput
from facepipe.face.decode import DecodeLimits, b64decode, decode_image, header_size, sniff

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
W, H = 24, 12


def encoded(ext: str) -> bytes:
    img = np.zeros((H, W, 3), np.uint8)
    img[:, : W // 2] = (0, 0, 255)  # left half red (BGR)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def with_exif(jpeg: bytes, orientation: int, big_endian: bool = True) -> bytes:
    """``jpeg`` with an APP1 EXIF segment holding one Orientation tag."""
    e = ">" if big_endian else "<"
    tiff = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    tiff += (
        struct.pack(e + "H", 1)
        + struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0)
        + struct.pack(e + "I", 0)
    )
    app1 = b"Exif\0\0" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp"])
def test_sniff_and_header_size_without_decoding(ext: str) -> None:
    data = encoded(ext)
    kind = sniff(data)
    assert kind == {".jpg": "jpeg"}.get(ext, ext[1:])
    assert header_size(data, kind) == (W, H)
    assert decode_image(data).shape == (H, W, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation: int) -> None:
    rgb = decode_image(with_exif(encoded(".jpg"), orientation))
    assert rgb.shape == ((W, H, 3) if orientation >= 5 else (H, W, 3))
    if orientation == 1:
        assert rgb[H // 2, 2, 0] > 200 and rgb[H // 2, W - 3, 0] < 50  # red stays on the left
    if orientation == 3:  # rotated 180: red on the right
        assert rgb[H // 2, 2, 0] < 50 and rgb[H // 2, W - 3, 0] > 200


def test_pixels_over_the_limit_are_refused_from_the_header() -> None:
    with pytest.raises(InvalidInput, match="exceeds the limit"):
        decode_image(encoded(".png"), DecodeLimits(max_pixels=W * H - 1))


SIGNATURES = [
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"RIFF\0\0\0\0WEBPVP8X",
    b"RIFF\0\0\0\0WEBPVP8L",
    b"BM",
    b"",
]


@FUZZ
@given(head=st.sampled_from(SIGNATURES), rest=st.binary(max_size=200))
def test_any_bytes_decode_or_are_refused_as_input(head: bytes, rest: bytes) -> None:
    try:
        img = decode_image(head + rest, DecodeLimits(max_pixels=1_000_000))
    except InvalidInput:  # also PayloadTooLarge, UnsupportedMediaType
        return
    assert img.ndim == 3 and img.shape[2] == 3


@FUZZ
@given(
    ext=st.sampled_from([".jpg", ".png", ".bmp", ".webp"]),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 10_000),
)
def test_corrupted_real_images_decode_or_are_refused(
    ext: str, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(encoded(ext))
    for at, value in flips:
        data[at % len(data)] = value
    with contextlib.suppress(InvalidInput):
        decode_image(bytes(data[: max(1, cut % (len(data) + 1))]), DecodeLimits(max_pixels=1_000_000))


@FUZZ
@given(
    orientation=st.integers(0, 65535),
    big_endian=st.booleans(),
    at=st.integers(12, 37),  # inside the EXIF segment: TIFF header, IFD entry, next-IFD offset
    noise=st.binary(max_size=8),
)
def test_any_exif_content_decodes(orientation: int, big_endian: bool, at: int, noise: bytes) -> None:
    data = with_exif(encoded(".jpg"), orientation, big_endian)
    noise = noise[: 38 - at]  # the segment's length stays true: only its content is garbage
    rgb = decode_image(data[:at] + noise + data[at + len(noise) :])
    assert rgb.shape in ((H, W, 3), (W, H, 3))


@FUZZ
@given(text=st.text(max_size=40))
def test_any_text_is_base64_or_none(text: str) -> None:
    """Found by schemathesis: a non-Latin-1 character in a base64 image was a 500 (UnicodeEncodeError)."""
    out = b64decode(text)
    assert out is None or isinstance(out, bytes)
    assert b64decode("data:image/png;base64,QUJD") == b"ABC" and b64decode("Δ") is None
