"""``facepipe convert``: import a TFLite, ONNX or Paddle model into a bundle in the repository."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import onnx

from facepipe.errors import ConversionError
from facepipe.models.bundle import Manifest, Preprocess, Source
from facepipe.models.convert.bundler import fill_io, write_bundle
from facepipe.models.convert.onnx import add_l2_head, free_batch_axis, load_onnx
from facepipe.models.convert.paddle import convert_paddle
from facepipe.models.convert.tflite import convert_tflite
from facepipe.models.convert.verify import run_onnx, synthetic_images, tflite_parity, to_input


@dataclass(slots=True)
class ImportOptions:
    name: str
    version: int = 1
    role: str = "embedding"
    layout: str = "NHWC"
    preprocess: Preprocess = field(default_factory=Preprocess)
    l2_output: str = ""
    dynamic_spatial: bool = False
    licence: str = ""
    max_batch: int = 64
    commercial: bool = False  # the weights may be used commercially (face.pack: clean loads only these)


def _sample_hw(model: onnx.ModelProto, layout: str) -> tuple[int, int]:
    dims = [d.dim_value or 64 for d in model.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise ConversionError(f"input rank {len(dims)}: only image models (rank 4) can be imported")
    return (dims[1], dims[2]) if layout == "NHWC" else (dims[2], dims[3])


def import_model(src: Path, opts: ImportOptions, root: Path) -> Path:
    """Convert ``src`` (a .tflite, .onnx, or a Paddle model directory) and install it as a bundle."""
    parity: dict[str, object] = {}
    if src.is_dir():
        model, kind = convert_paddle(src), "paddle"
    elif src.suffix == ".tflite":
        model, kind, opts.layout = convert_tflite(src, dynamic_spatial=opts.dynamic_spatial), "tflite", "NHWC"
    elif src.suffix == ".onnx":
        model, kind = load_onnx(src), "onnx"
    else:
        raise ConversionError(
            f"{src}: unknown model type (expected .tflite, .onnx or a Paddle model directory)"
        )
    if kind != "tflite":
        free_batch_axis(model)
    pre = opts.preprocess
    h, w = _sample_hw(model, opts.layout)
    samples = [to_input(img, pre) for img in synthetic_images(2, h, w)]
    if opts.layout == "NCHW":
        samples = [s.transpose(0, 3, 1, 2).copy() for s in samples]
    if kind == "tflite":
        result = tflite_parity(model, src, samples)
        if not result.ok:
            raise ConversionError(
                f"{src.name}: parity with the TFLite interpreter failed: {result.to_dict()}"
            )
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
