"""The one place where the face data path is written, stage by stage, in order."""

from __future__ import annotations

from typing import Any

from facepipe.config import Config, stage_config
from facepipe.face.decode import DecodeLimits, decode_image
from facepipe.face.embed import EmbedOp
from facepipe.serving.op import FunctionOp
from facepipe.serving.pipeline import Pipeline
from facepipe.serving.repository import Repository


def decode_op(limits: DecodeLimits) -> FunctionOp:
    def decode(batch: list[bytes]) -> list[Any]:
        out: list[Any] = []
        for data in batch:
            try:
                out.append(decode_image(data, limits))
            except Exception as exc:  # one bad image fails only its own request
                out.append(exc)
        return out

    return FunctionOp(decode)


def arcface(config: Config, repo: Repository) -> Pipeline:
    """The seed's ``ArcFace`` service: an aligned face crop -> resize to 112x112 -> embedding."""
    op = config.op_config("ArcFace").local_service_conf
    bundle = repo.bundle(op.model_config_ or "mobilefacenet")
    limits = DecodeLimits(max_bytes=config.max_body_bytes)
    return Pipeline(
        "ArcFace",
        [
            (stage_config(config, "decode"), lambda: decode_op(limits)),
            (stage_config(config, "ArcFace"), lambda: EmbedOp(bundle, op.thread_num)),
        ],
        timeout_s=config.request_timeout_ms / 1000.0,
    )
