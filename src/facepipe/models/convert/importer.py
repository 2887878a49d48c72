"""``facepipe convert``: import a TFLite, ONNX or Paddle model into a bundle in the repository."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from facepipe.errors import ConversionError
from facepipe.models.bundle import Manifest, Preprocess, Source
from facepipe.models.convert.bundler import fill_io, write_bundle
from facepipe.models.convert.onnx import add_l2_head, free_batch_axis, load_onnx
from facepipe.models.convert.paddle import convert_paddle, paddle_parity
from facepipe.models.convert.tflite import convert_tflite
from facepipe.models.convert.verify import Parity, run_onnx, synthetic_images, tflite_parity, to_input


@dataclass(slots=True)
class ImportOptions:
    name: str
    version: int = 1
    role: str = "embedding"
    layout: str = "NHWC"  # or NCHW, or auto (from the input shape)
    preprocess: Preprocess = field(default_factory=Preprocess)
    l2_output: str = ""
    dynamic_spatial: bool = False
    licence: str = ""
    max_batch: int = 64
    commercial: bool = False  # the weights may be used commercially (face.pack: clean loads only these)


def _input_dims(model: onnx.ModelProto) -> list[int]:
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise ConversionError(f"input rank {len(dims)}: only image models (rank 4) can be imported")
    return dims


def _layout(model: onnx.ModelProto, layout: str) -> str:
    """``auto``: NCHW when the input's channel axis (1 or 3 channels) comes first, NHWC when last."""
    if layout.upper() in ("NHWC", "NCHW"):
        return layout.upper()
    if layout.upper() != "AUTO":
        raise ConversionError(f"layout {layout!r}: expected NHWC, NCHW or auto")
    dims = _input_dims(model)
    if dims[1] in (1, 3) and dims[3] not in (1, 3):
        return "NCHW"
    if dims[3] in (1, 3) and dims[1] not in (1, 3):
        return "NHWC"
    raise ConversionError(f"input shape {dims}: cannot tell the layout, give --layout NHWC or NCHW")


def _sample_hw(model: onnx.ModelProto, layout: str) -> tuple[int, int]:
    dims = [d or 64 for d in _input_dims(model)]
    return (dims[1], dims[2]) if layout == "NHWC" else (dims[2], dims[3])


def _load(src: Path, opts: ImportOptions) -> tuple[onnx.ModelProto, str, Callable[..., Parity] | None]:
    """The source as ONNX, its kind, and how to check parity against the source's own runtime."""
    if src.is_dir():
        pm = convert_paddle(src)
        return pm.onnx, "paddle", lambda model, samples: paddle_parity(pm, samples)
    if src.suffix == ".tflite":
        opts.layout = "NHWC"
        model = convert_tflite(src, dynamic_spatial=opts.dynamic_spatial)
        return model, "tflite", lambda model, samples: tflite_parity(model, src, samples)
    if src.suffix == ".onnx":
        return load_onnx(src), "onnx", None
    raise ConversionError(f"{src}: unknown model type (expected .tflite, .onnx or a Paddle model directory)")


def import_model(src: Path, opts: ImportOptions, root: Path) -> Path:
    """Convert ``src`` (a .tflite, .onnx, or a Paddle model directory) and install it as a bundle."""
    parity: dict[str, object] = {}
    model, kind, reference = _load(src, opts)
    if kind != "tflite":
        free_batch_axis(model)
    opts.layout = _layout(model, opts.layout)
    pre = opts.preprocess
    h, w = _sample_hw(model, opts.layout)
    samples = [to_input(img, pre) for img in synthetic_images(2, h, w)]
    if opts.layout == "NCHW":
        samples = [s.transpose(0, 3, 1, 2).copy() for s in samples]
    if reference is not None:
        result = reference(model, samples)
        if not result.ok:
            raise ConversionError(f"{src.name}: parity with {result.reference} failed: {result.to_dict()}")
        parity = result.to_dict()
    else:
        run_onnx(model, samples)  # the model must at least run on the declared input
    if opts.l2_output:
        add_l2_head(model, opts.l2_output)
    manifest = Manifest(
        name=opts.name,
        version=opts.version,
        role=opts.role,
        inputs=[],
        outputs=[],
        preprocess=pre,
        normalized=bool(opts.l2_output),
        max_batch=opts.max_batch,
        source=Source(kind, src.name, "", opts.licence, opts.commercial),
        parity=parity,
    )
    fill_io(manifest, model, layout=opts.layout)
    if opts.role == "embedding":
        manifest.embedding_dim = int(manifest.outputs[0].shape[-1])
    return write_bundle(model, manifest, samples, root)
