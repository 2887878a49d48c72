"""TFLite -> ONNX converter (facepipe's own): reads the graph with the ``tflite`` schema package and
writes ONNX with ``onnx``.

Activations of rank 4 are carried in NCHW inside the ONNX graph (what ONNX convolutions want) and
transposed back to TFLite's NHWC only where an op needs TFLite's own layout (reshape, fully connected,
slicing) and at the graph outputs, so inputs and outputs keep the TFLite model's names and layouts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from facepipe.errors import ConversionError
from facepipe.models.convert import tflite_ops
from facepipe.models.convert.tflite_passes import fold_dequantize, fuse_prelu
from facepipe.models.convert.tflite_reader import Graph, read_tflite

log = logging.getLogger(__name__)

OPSET = 18
TO_NCHW = [0, 3, 1, 2]
TO_NHWC = [0, 2, 3, 1]


@dataclass(slots=True)
class Value:
    name: str
    nchw: bool
    rank: int


class Emitter:
    """Accumulates ONNX nodes and initialisers while tracking each tensor's layout."""

    def __init__(self, graph: Graph, dynamic_batch: bool) -> None:
        self.graph = graph
        self.dynamic_batch = dynamic_batch
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.values: dict[int, Value] = {}
        self._cache: dict[tuple[int, str], str] = {}
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}__{self._count}"

    def const(self, data: np.ndarray, hint: str = "const") -> str:
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(data), name))
        return name

    def node(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        out = self.fresh(hint or op_type)
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def is_const(self, t: int) -> bool:
        return self.graph.tensors[t].data is not None

    def rank(self, t: int) -> int:
        return len(self.graph.tensors[t].shape)

    def data(self, t: int) -> np.ndarray:
        data = self.graph.tensors[t].data
        if data is None:
            raise ConversionError(f"{self.graph.name}: tensor {self.graph.tensors[t].name} must be constant")
        return data

    def get(self, t: int, layout: str) -> str:
        """ONNX name of tensor t in ``layout`` ('nchw', 'nhwc' or 'any'), transposing if needed."""
        key = (t, layout)
        if key in self._cache:
            return self._cache[key]
        if self.is_const(t):
            data = self.data(t)
            if layout == "nchw" and 0 < data.ndim <= 4:
                data = data.reshape((1,) * (4 - data.ndim) + data.shape).transpose(TO_NCHW)
            name = self.const(data, "c")
        else:
            v = self.values[t]
            if layout == "any" or v.rank != 4 or v.nchw == (layout == "nchw"):
                name = v.name
            else:
                name = self.node("Transpose", [v.name], perm=TO_NCHW if layout == "nchw" else TO_NHWC)
        self._cache[key] = name
        return name

    def set(self, t: int, name: str, nchw: bool) -> None:
        self.values[t] = Value(name, nchw and self.rank(t) == 4, self.rank(t))

    def activation(self, name: str, code: int) -> str:
        if code == 0:
            return name
        if code == 1:
            return self.node("Relu", [name])
        if code in (2, 3):
            lo, hi = (-1.0, 1.0) if code == 2 else (0.0, 6.0)
            return self.node(
                "Clip", [name, self.const(np.array(lo, np.float32)), self.const(np.array(hi, np.float32))]
            )
        if code == 4:
            return self.node("Tanh", [name])
        raise ConversionError(f"{self.graph.name}: fused activation {code} is not supported")


def _io_shape(shape: list[int], dynamic: dict[int, str]) -> list[int | str]:
    return [dynamic.get(i, d) for i, d in enumerate(shape)]


def convert_tflite(
    path: Path, *, dynamic_batch: bool = True, dynamic_spatial: bool = False
) -> onnx.ModelProto:
    """Convert one TFLite file. ``dynamic_spatial`` frees H and W of a fully convolutional net."""
    graph = read_tflite(path)
    fold_dequantize(graph)
    fused = fuse_prelu(graph)
    log.debug("%s: %d ops after rewrites, %d PReLU fused", graph.name, len(graph.ops), fused)
    em = Emitter(graph, dynamic_batch)
    dyn: dict[int, str] = {0: "batch"} if dynamic_batch else {}
    if dynamic_spatial:
        dyn |= {1: "height", 2: "width"}
    inputs = []
    for t in graph.inputs:
        tensor = graph.tensors[t]
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(tensor.dtype))
        inputs.append(helper.make_tensor_value_info(tensor.name, elem, _io_shape(tensor.shape, dyn)))
        em.set(t, tensor.name, nchw=False)
    for i, op in enumerate(graph.ops):
        handler = tflite_ops.HANDLERS.get(op.kind)
        if handler is None:
            raise ConversionError(
                f"{path.name}: TFLite op {op.kind} (op #{i}) is not supported by facepipe convert"
            )
        handler(em, op)
    outputs = []
    for t in graph.outputs:
        tensor = graph.tensors[t]
        em.nodes.append(helper.make_node("Identity", [em.get(t, "nhwc")], [tensor.name]))
        out_dyn = dyn if len(tensor.shape) == 4 else {k: v for k, v in dyn.items() if k == 0}
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(tensor.dtype))
        outputs.append(helper.make_tensor_value_info(tensor.name, elem, _io_shape(tensor.shape, out_dyn)))
    onnx_graph = helper.make_graph(em.nodes, graph.name, inputs, outputs, em.inits)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    model.producer_name = "facepipe-convert"
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"{path.name}: converted graph is invalid: {exc}") from exc
    return model
