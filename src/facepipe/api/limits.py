"""Pixel work bounded per request and per server.

Every image's size is read from its header (no pixel decoded) when a request arrives: a request may
ask for at most ``face.max_request_pixels`` in all, and the server holds at most
``face.max_inflight_pixels`` of admitted images at once (about 3 bytes of RGB per pixel, plus the
detector's pyramid); a request that would go over waits for none of it and answers 503 (retry).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from facepipe.errors import Overloaded, PayloadTooLarge
from facepipe.face.decode import header_size, sniff

log = logging.getLogger(__name__)


def pixels(image: bytes) -> int:
    """Pixels an image will decode to, from its header; 0 when unreadable (decode refuses it later)."""
    size = header_size(image, sniff(image))
    return size[0] * size[1] if size is not None else 0


@dataclass(slots=True)
class PixelBudget:
    per_request: int = 64_000_000
    in_flight_max: int = 256_000_000
    in_flight: int = 0  # pixels of the requests admitted and not finished (event-loop owned)

    @contextmanager
    def admit(self, images: list[bytes]) -> Iterator[int]:
        """Hold ``images``' pixels while the request runs; refuse what is over either budget."""
        total = sum(pixels(img) for img in images)
        if total > self.per_request:
            raise PayloadTooLarge(
                f"{len(images)} images of {total} pixels in all; the limit is {self.per_request} per request"
            )
        if self.in_flight and self.in_flight + total > self.in_flight_max:
            raise Overloaded(
                f"{self.in_flight} pixels in flight; the server's limit is {self.in_flight_max}: retry"
            )
        self.in_flight += total
        try:
            yield total
        finally:
            self.in_flight -= total
