"""Plain ONNX models as bundles: inspect, free the batch axis (rewriting a graph baked for batch 1),
append an L2-normalisation head."""

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


def unbake_batch(model: onnx.ModelProto) -> int:
    """Rewrite what ties a published graph to batch 1, so that it takes any batch: a block of zeros
    made by ConstantOfShape and joined by Concat (BlazeFace's channel padding) becomes a Pad of the
    other input, and a Reshape target that starts with a literal 1 starts with 0 (keep the batch).
    Returns how many nodes were rewritten; the caller checks the result against the original."""
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    zeros = {n.output[0]: n for n in graph.node if n.op_type == "ConstantOfShape" and _is_zero_fill(n)}
    rewritten = 0
    for i, node in enumerate(graph.node):
        if node.op_type == "Concat" and len(node.input) == 2 and sum(x in zeros for x in node.input) == 1:
            fill = zeros[next(x for x in node.input if x in zeros)]
            shape = consts[fill.input[0]].astype(np.int64)
            axis = next(a.i for a in node.attribute if a.name == "axis") % len(shape)
            data = str(next(x for x in node.input if x not in zeros))
            pads = np.zeros(2 * len(shape), np.int64)  # zeros after the data if it came first
            pads[axis + (len(shape) if node.input[0] == data else 0)] = shape[axis]
            name = f"{node.output[0]}_pads"
            graph.initializer.append(numpy_helper.from_array(pads, name))
            pad = helper.make_node("Pad", [data, name], [str(node.output[0])], mode="constant")
            graph.node[i].CopyFrom(pad)
            rewritten += 1
        elif node.op_type == "Reshape" and node.input[1] in consts and consts[node.input[1]][0] == 1:
            target = consts[node.input[1]].astype(np.int64).copy()
            target[0] = 0
            name = f"{node.output[0]}_shape"
            graph.initializer.append(numpy_helper.from_array(target, name))
            node.input[1] = name
            rewritten += 1
    used = {x for n in graph.node for x in n.input} | {o.name for o in graph.output}
    keep = [n for n in graph.node if n.output[0] not in zeros or n.output[0] in used]
    del graph.node[:]
    graph.node.extend(keep)
    used = {x for n in keep for x in n.input}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    del graph.value_info[:]  # inferred shapes of intermediates carried the old batch of 1
    return rewritten


def _is_zero_fill(node: onnx.NodeProto) -> bool:
    value = next((a.t for a in node.attribute if a.name == "value"), None)
    return value is None or not numpy_helper.to_array(value).any()
