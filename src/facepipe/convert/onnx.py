"""Plain ONNX models as bundles: inspect, free the batch axis, append an L2-normalisation head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from facepipe.errors import ConversionError

L2_EPS = 1e-10


def load_onnx(path: Path) -> onnx.ModelProto:
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ConversionError(f"{path.name}: not a valid ONNX model ({exc})") from exc
    return model


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def io_specs(model: onnx.ModelProto) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Inputs and outputs as ``{name, shape, dtype}`` with -1 for every non-fixed dimension."""

    def spec(v: onnx.ValueInfoProto) -> dict[str, object]:
        t = v.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name
        return {"name": v.name, "shape": shape, "dtype": dtype}

    return [spec(v) for v in _graph_inputs(model)], [spec(v) for v in model.graph.output]


def free_batch_axis(model: onnx.ModelProto) -> None:
    """Mark axis 0 of every graph input and output as the symbolic ``batch`` dimension."""
    for v in [*_graph_inputs(model), *model.graph.output]:
        dims = v.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"


def add_l2_head(model: onnx.ModelProto, output: str) -> None:
    """Rename ``output`` to ``<output>_raw`` and append ``x / max(||x||, eps)`` under the old name."""
    names = [o.name for o in model.graph.output]
    if output not in names:
        raise ConversionError(f"model has no output named {output!r} (outputs: {names})")
    raw = f"{output}_raw"
    for node in model.graph.node:
        node.output[:] = [raw if o == output else o for o in node.output]
    axes, eps = f"{output}_l2_axes", f"{output}_l2_eps"
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([-1], np.int64), axes),
            numpy_helper.from_array(np.array(L2_EPS, np.float32), eps),
        ]
    )
    norm, clipped = f"{output}_l2_norm", f"{output}_l2_clip"
    model.graph.node.extend(
        [
            helper.make_node("ReduceL2", [raw, axes], [norm], keepdims=1),
            helper.make_node("Max", [norm, eps], [clipped]),
            helper.make_node("Div", [raw, clipped], [output]),
        ]
    )
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 18:
        raise ConversionError(f"the L2 head needs ONNX opset >= 18 (model has {opset}); convert it up first")
