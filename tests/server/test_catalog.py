"""The seed ArcFace service as a KServe model: bad image values and oversized batches are 400s that
say why (issue 22 items 7 and 8: a request of more than 256 images always got 503)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from facepipe.engine.op import FunctionOp
from facepipe.engine.pipeline import Pipeline
from facepipe.engine.stage import StageConfig
from facepipe.errors import InvalidInput, PayloadTooLarge
from facepipe.server.catalog import ImageModel, image_bytes


def test_image_values_that_are_neither_bytes_nor_base64_are_invalid_input() -> None:
    for value in ("Δ", "not base64!", b"\x00\x01"):
        with pytest.raises(InvalidInput, match="neither image bytes nor valid base64"):
            image_bytes(value)


def test_more_images_than_the_queue_holds_is_a_400_naming_the_limit() -> None:
    pipeline = Pipeline("ArcFace", [(StageConfig("ArcFace", queue_size=8), lambda: FunctionOp(lambda b: b))])
    model = ImageModel(pipeline, dim=4)
    images = np.empty(9, dtype=object)
    images[:] = [b"\xff\xd8\xff" + bytes([i]) for i in range(9)]
    with pytest.raises(InvalidInput, match="9 images in one request; the limit is 8"):
        asyncio.run(model.infer({"image": images}))


def test_the_pixel_budget_covers_kserve_arcface_batches() -> None:
    """Issue 22 item 4: the per-request and per-server pixel budget holds on the KServe ArcFace path too."""
    from facepipe.api.limits import PixelBudget
    from tests.api.test_limits import BOMB

    pipeline = Pipeline("ArcFace", [(StageConfig("ArcFace"), lambda: FunctionOp(lambda b: b))])
    model = ImageModel(pipeline, dim=4, budget=PixelBudget(per_request=64_000_000))
    images = np.empty(2, dtype=object)
    images[:] = [BOMB, BOMB]  # 72 Mpx from the headers
    with pytest.raises(PayloadTooLarge, match="per request"):
        asyncio.run(model.infer({"image": images}))
