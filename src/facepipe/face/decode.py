"""Image decoding with limits: JPEG, PNG, WebP, BMP; EXIF orientation applied; the pixel count is
read from the header and checked before any pixel is decoded (decompression bombs are refused)."""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

import cv2
import numpy as np

from facepipe.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000


def b64decode(text: str | bytes) -> bytes | None:
    """Bytes from base64 text (a ``data:...;base64,`` prefix is allowed); None if it is not base64."""
    try:
        raw = text.encode("ascii") if isinstance(text, str) else text
    except UnicodeEncodeError:  # base64 is ASCII: anything else is not base64
        return None
    if raw.startswith(b"data:"):
        raw = raw.split(b",", 1)[-1]
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None


def sniff(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    return ""


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def header_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) from the file header, without decoding pixels; None if unreadable."""
    if kind == "png" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if kind == "bmp" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)
    if kind == "jpeg":
        return _jpeg_size(data)
    if kind == "webp" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3FFF, h & 0x3FFF
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def checked(data: bytes, limits: DecodeLimits = DecodeLimits(), label: str = "image") -> str:
    """The image's kind (``jpeg``, ``png``, ``webp``, ``bmp``) once its size and header pass the limits.
    Raises InvalidInput / PayloadTooLarge / UnsupportedMediaType."""
    if not data:
        raise InvalidInput(f"{label}: empty")
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(f"{label}: {len(data)} bytes exceeds the limit of {limits.max_bytes}")
    kind = sniff(data)
    if not kind:
        raise UnsupportedMediaType(f"{label}: not a JPEG, PNG, WebP or BMP image")
    size = header_size(data, kind)
    if size is None:
        raise InvalidInput(f"{label}: corrupt {kind.upper()} header")
    if size[0] * size[1] > limits.max_pixels:
        raise PayloadTooLarge(f"{label}: {size[0]}x{size[1]} pixels exceeds the limit of {limits.max_pixels}")
    return kind


def decode_image(data: bytes, limits: DecodeLimits = DecodeLimits(), label: str = "image") -> np.ndarray:
    """Bytes -> HxWx3 uint8 RGB. Raises InvalidInput / PayloadTooLarge / UnsupportedMediaType."""
    kind = checked(data, limits, label)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # applies EXIF orientation
    if img is None:
        raise InvalidInput(f"{label}: corrupt {kind.upper()} data")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
