"""Pixel work bounded per request and per server, from image headers (issue 22 item 4)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from facepipe.api.limits import PixelBudget, pixels
from facepipe.errors import Overloaded, PayloadTooLarge
from tests.edges.conftest import make_app


def png_header(w: int, h: int) -> bytes:
    """A PNG's signature and IHDR: all the budget reads (the pixels are never decoded)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )


BOMB = png_header(6000, 6000)  # 36 Mpx: under the 40 Mpx per-image limit, 3.5 s of CPU to decode


def test_pixels_come_from_the_header() -> None:
    assert pixels(BOMB) == 36_000_000 and pixels(b"not an image") == 0


def test_a_request_over_its_pixel_budget_is_413_before_any_decode() -> None:
    budget = PixelBudget(per_request=64_000_000, in_flight_max=256_000_000)
    with budget.admit([BOMB]) as n:
        assert n == 36_000_000 and budget.in_flight == n
    assert budget.in_flight == 0
    with pytest.raises(PayloadTooLarge, match="limit is 64000000 per request"), budget.admit([BOMB] * 8):
        pass
    assert budget.in_flight == 0


def test_the_server_holds_at_most_its_in_flight_pixels() -> None:
    budget = PixelBudget(per_request=40_000_000, in_flight_max=80_000_000)
    with (
        budget.admit([BOMB]),
        budget.admit([BOMB]),
        pytest.raises(Overloaded, match="retry"),
        budget.admit([BOMB]),
    ):
        pass
    assert budget.in_flight == 0
    with budget.admit([BOMB]):  # released: admitted again
        pass


def test_detect_embed_verify_answer_413_for_the_bomb_request(tmp_path: Path) -> None:
    app = make_app(tmp_path)  # budget of 1000 pixels per request
    files = [(f"f{i}", (f"{i}.png", png_header(40, 40), "image/png")) for i in range(2)]
    for path in ("/v1/detect", "/v1/embed", "/v1/verify", "/v1/embed?aligned=true"):
        r = app.client.post(path, files=files)
        assert r.status_code == 413 and "per request" in r.text, (path, r.text)
    app.gallery.close()
