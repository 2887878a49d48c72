"""Read a TFLite flatbuffer (through the ``tflite`` schema package) into plain records."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tflite

from facepipe.errors import ConversionError

_DTYPES: dict[int, Any] = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT64: np.int64,
    tflite.TensorType.BOOL: np.bool_,
    tflite.TensorType.INT8: np.int8,
    tflite.TensorType.INT16: np.int16,
}
_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
# Builtin options class for each op kind that has options we read.
_OPTIONS: dict[str, Any] = {
    "CONV_2D": tflite.Conv2DOptions,
    "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
    "MAX_POOL_2D": tflite.Pool2DOptions,
    "AVERAGE_POOL_2D": tflite.Pool2DOptions,
    "FULLY_CONNECTED": tflite.FullyConnectedOptions,
    "ADD": tflite.AddOptions,
    "SUB": tflite.SubOptions,
    "MUL": tflite.MulOptions,
    "DIV": tflite.DivOptions,
    "CONCATENATION": tflite.ConcatenationOptions,
    "RESHAPE": tflite.ReshapeOptions,
    "SOFTMAX": tflite.SoftmaxOptions,
    "LEAKY_RELU": tflite.LeakyReluOptions,
    "REDUCE_MAX": tflite.ReducerOptions,
    "SUM": tflite.ReducerOptions,
    "MEAN": tflite.ReducerOptions,
    "STRIDED_SLICE": tflite.StridedSliceOptions,
    "L2_NORMALIZATION": tflite.L2NormOptions,
    "RESIZE_BILINEAR": tflite.ResizeBilinearOptions,
}


@dataclass(slots=True)
class Tensor:
    name: str
    shape: list[int]
    dtype: Any
    data: np.ndarray | None = None
    scale: float | None = None
    zero_point: int = 0


@dataclass(slots=True)
class Op:
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Graph:
    name: str
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]

    def consumers(self) -> dict[int, list[int]]:
        """Tensor index -> indices of the ops that read it."""
        out: dict[int, list[int]] = {}
        for i, op in enumerate(self.ops):
            for t in op.inputs:
                out.setdefault(t, []).append(i)
        return out

    def add_constant(self, name: str, data: np.ndarray) -> int:
        self.tensors.append(Tensor(name, list(data.shape), data.dtype, data))
        return len(self.tensors) - 1


def _tensor(model: Any, t: Any) -> Tensor:
    type_code = t.Type()
    if type_code not in _DTYPES:
        raise ConversionError(f"tensor {t.Name().decode()}: TFLite tensor type {type_code} is not supported")
    dtype = _DTYPES[type_code]
    shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
    buf = model.Buffers(t.Buffer())
    data = None
    if buf is not None and buf.DataLength() > 0:
        data = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype).reshape(shape).copy()
    scale, zero = None, 0
    q = t.Quantization()
    if q is not None and q.ScaleLength() == 1:
        scale, zero = float(q.ScaleAsNumpy()[0]), int(q.ZeroPointAsNumpy()[0])
    return Tensor(t.Name().decode(), shape, dtype, data, scale, zero)


def _options(kind: str, op: Any) -> Any:
    cls = _OPTIONS.get(kind)
    table = op.BuiltinOptions()
    if cls is None or table is None:
        return None
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


def read_tflite(path: Path) -> Graph:
    """Parse ``path`` into a Graph; raises ConversionError on anything but one float subgraph."""
    buf = path.read_bytes()
    if buf[4:8] != b"TFL3":
        raise ConversionError(f"{path.name}: not a TFLite flatbuffer (no TFL3 identifier)")
    model = tflite.Model.GetRootAsModel(buf, 0)
    if model.SubgraphsLength() != 1:
        raise ConversionError(f"{path.name}: {model.SubgraphsLength()} subgraphs; only 1 is supported")
    g = model.Subgraphs(0)
    tensors = [_tensor(model, g.Tensors(i)) for i in range(g.TensorsLength())]
    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        kind = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
        if kind == "CUSTOM":
            kind = f"CUSTOM:{code.CustomCode().decode()}"
        ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(x) for x in op.OutputsAsNumpy()]
        ops.append(Op(kind, ins, outs, _options(kind, op)))
    inputs = [int(x) for x in g.InputsAsNumpy()]
    outputs = [int(x) for x in g.OutputsAsNumpy()]
    return Graph(path.stem, tensors, ops, inputs, outputs)
