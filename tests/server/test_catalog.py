"""The seed ArcFace service as a KServe model: bad image values and oversized batches are 400s that
say why (issue 22 items 7 and 8: a request of more than 256 images always got 503)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from facepipe.engine.op import FunctionOp
from facepipe.engine.pipeline import Pipeline
from facepipe.engine.stage import StageConfig
from facepipe.errors import InvalidInput
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
