"""Paddle inference models (``*.pdmodel`` + ``*.pdiparams``) to ONNX through ``paddle2onnx``.

This is the seed's own conversion step; ``paddle2onnx`` is an optional extra
(``pip install 'facepipe[paddle]'``) so that the product does not depend on Paddle.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import onnx

from facepipe.errors import ConversionError


def find_paddle_files(model_dir: Path) -> tuple[Path, Path]:
    """Return the (.pdmodel, .pdiparams) pair in ``model_dir``; exactly one of each is expected."""
    models = sorted(model_dir.glob("*.pdmodel"))
    params = sorted(model_dir.glob("*.pdiparams"))
    if len(models) != 1 or len(params) != 1:
        raise ConversionError(
            f"{model_dir}: expected one *.pdmodel and one *.pdiparams, found {len(models)} and {len(params)}"
        )
    return models[0], params[0]


def convert_paddle(model_dir: Path, opset: int = 18) -> onnx.ModelProto:
    pdmodel, pdiparams = find_paddle_files(model_dir)
    try:
        p2o = importlib.import_module("paddle2onnx")
    except ImportError as exc:
        raise ConversionError(
            "converting Paddle models needs paddle2onnx: pip install 'facepipe[paddle]'"
        ) from exc
    try:
        raw = p2o.export(str(pdmodel), str(pdiparams), "", opset_version=opset)
    except Exception as exc:
        raise ConversionError(f"{model_dir}: paddle2onnx failed: {exc}") from exc
    return onnx.load_model_from_string(raw if isinstance(raw, bytes) else Path(raw).read_bytes())
