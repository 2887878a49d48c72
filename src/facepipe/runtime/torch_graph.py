"""An ONNX graph as a ``torch.nn.Module``: the bundle's own ``model.onnx`` executed node by node with
torch operators, so one file serves on onnxruntime (CPU) and on PyTorch (CUDA, fp16, CUDA graphs).

Covers the operators facepipe's converter emits (convolutions with SAME/VALID padding, PReLU, pooling,
Gemm, reductions, elementwise arithmetic, Reshape/Transpose); anything else is refused at load with
its name. Float constants are buffers (they follow ``.to(device)`` and ``.half()``); integer constants
(shapes, axes) stay Python values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from facepipe.errors import ModelError

Node = tuple[str, list[str], list[str], dict[str, Any]]
Op = Callable[["OnnxModule", list[Any], dict[str, Any]], torch.Tensor]


def _same_pads(size: list[int], kernel: list[int], stride: list[int], dilation: list[int]) -> list[int]:
    """F.pad order (last dim first) for SAME_UPPER: the odd pixel goes at the end."""
    pads: list[int] = []
    for i, k, s, d in reversed(list(zip(size, kernel, stride, dilation, strict=True))):
        total = max((math.ceil(i / s) - 1) * s + (k - 1) * d + 1 - i, 0)
        pads += [total // 2, total - total // 2]
    return pads


def _pads(x: torch.Tensor, a: dict[str, Any], kernel: list[int]) -> list[int]:
    stride, dilation = a.get("strides", [1] * len(kernel)), a.get("dilations", [1] * len(kernel))
    mode = a.get("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        pads = _same_pads(list(x.shape[2:]), kernel, stride, dilation)
        return (
            pads
            if mode == "SAME_UPPER"
            else [p for pair in zip(pads[1::2], pads[::2], strict=True) for p in pair]
        )
    explicit = a.get("pads", [0] * 2 * len(kernel))
    n = len(kernel)
    return [p for i in reversed(range(n)) for p in (explicit[i], explicit[i + n])]


def _conv(m: OnnxModule, ins: list[Any], a: dict[str, Any]) -> torch.Tensor:
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    left, right, top, bottom = _pads(x, a, list(w.shape[2:]))
    padding: tuple[int, int] = (0, 0)
    if left == right and top == bottom:
        padding = (top, left)  # symmetric: the convolution pads by itself, no extra copy
    else:
        x = F.pad(x, [left, right, top, bottom])
    return F.conv2d(x, w, b, a.get("strides", [1, 1]), padding, a.get("dilations", [1, 1]), a.get("group", 1))


def _channel_slope(x: torch.Tensor, slope: torch.Tensor) -> bool:
    """A slope that is one value per channel of an NCHW activation: (C,1,1) or (1,C,1,1)."""
    if x.dim() != 4 or slope.numel() != x.shape[1]:
        return False
    dims = list(slope.shape)
    return dims[-2:] == [1, 1] and (dims[:-2] == [x.shape[1]] or dims[:-2] == [1, x.shape[1]])


def _prelu(m: OnnxModule, ins: list[Any], a: dict[str, Any]) -> torch.Tensor:
    x, slope = ins[0], ins[1]
    if _channel_slope(x, slope):
        # per-channel: one fused kernel. Before, (1, C, 1, 1) slopes (MobileFaceNet's) took the
        # generic path, three kernels each: 8.3 of a batch-512 forward's ~20 ms on an H100
        return F.prelu(x, slope.reshape(-1))
    return torch.where(x >= 0, x, x * slope)


def _maxpool(m: OnnxModule, ins: list[Any], a: dict[str, Any]) -> torch.Tensor:
    x, kernel = ins[0], a["kernel_shape"]
    x = F.pad(x, _pads(x, a, kernel), value=float("-inf"))
    return F.max_pool2d(x, kernel, a.get("strides", kernel), ceil_mode=bool(a.get("ceil_mode", 0)))


def _avgpool(m: OnnxModule, ins: list[Any], a: dict[str, Any]) -> torch.Tensor:
    """Average over the window's real pixels (ONNX's default count_include_pad=0), any padding."""
    x, kernel = ins[0], a["kernel_shape"]
    pads, stride = _pads(x, a, kernel), a.get("strides", kernel)
    total = F.avg_pool2d(F.pad(x, pads), kernel, stride)
    if a.get("count_include_pad", 0) or not any(pads):
        return total
    ones = F.pad(torch.ones_like(x[:, :1]), pads)
    return total / F.avg_pool2d(ones, kernel, stride)


def _slice(m: OnnxModule, ins: list[Any], a: dict[str, Any]) -> torch.Tensor:
    x: torch.Tensor = ins[0]
    starts, ends = list(ins[1]), list(ins[2])
    axes = list(ins[3]) if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
    steps = list(ins[4]) if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    index: list[slice] = [slice(None)] * x.dim()
    for st, en, ax, sp in zip(starts, ends, axes, steps, strict=True):
        index[ax] = slice(st, min(en, x.shape[ax]), sp)
    return x[tuple(index)]


def _cast(m: OnnxModule, ins: list[Any], a: dict[str, Any]) -> torch.Tensor:
    to, x = a["to"], ins[0]
    if to in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
        dtype = m.float_dtype  # floats follow the module's precision
    else:
        dtype = {onnx.TensorProto.BOOL: torch.bool, onnx.TensorProto.INT32: torch.int32}.get(to, torch.int64)
    out: torch.Tensor = x.to(dtype)
    return out


def _reshape(m: OnnxModule, ins: list[Any], a: dict[str, Any]) -> torch.Tensor:
    x: torch.Tensor = ins[0]
    return x.reshape([x.shape[i] if s == 0 else s for i, s in enumerate(list(ins[1]))])


def _pad(m: OnnxModule, ins: list[Any], a: dict[str, Any]) -> torch.Tensor:
    """Constant padding; ONNX lists all begins then all ends, F.pad wants (begin, end) last dim first."""
    mode = a.get("mode", b"constant")
    if (mode.decode() if isinstance(mode, bytes) else mode) != "constant":
        raise ModelError(f"the torch runtime pads with constants only, not {mode!r}")
    x, pads = ins[0], [int(p) for p in (ins[1] if len(ins) > 1 else a["pads"])]
    n = x.dim()
    value = float(ins[2]) if len(ins) > 2 and ins[2] is not None else 0.0
    return F.pad(x, [p for d in reversed(range(n)) for p in (pads[d], pads[d + n])], value=value)


def _reduce(fn: Callable[..., torch.Tensor], widen: bool = False) -> Op:
    def run(m: OnnxModule, ins: list[Any], a: dict[str, Any]) -> torch.Tensor:
        x = ins[0].float() if widen else ins[0]
        axes = list(ins[1]) if len(ins) > 1 and ins[1] is not None else a.get("axes")
        dims = list(range(x.dim())) if axes is None else [int(d) for d in axes]
        out = fn(x, dims, bool(a.get("keepdims", 1)))
        return out.to(ins[0].dtype)

    return run


def _gemm(m: OnnxModule, ins: list[Any], a: dict[str, Any]) -> torch.Tensor:
    x, w = ins[0], ins[1]
    x = x.t() if a.get("transA", 0) else x
    w = w.t() if a.get("transB", 0) else w
    out = torch.mul(x @ w, a.get("alpha", 1.0))
    if len(ins) > 2:
        out = out + a.get("beta", 1.0) * ins[2]
    return out


OPS: dict[str, Op] = {
    "Conv": _conv,
    "MaxPool": _maxpool,
    "PRelu": _prelu,
    "Add": lambda m, ins, a: ins[0] + ins[1],
    "Sub": lambda m, ins, a: ins[0] - ins[1],
    "Mul": lambda m, ins, a: ins[0] * ins[1],
    "Div": lambda m, ins, a: ins[0] / ins[1],
    "Max": lambda m, ins, a: torch.maximum(ins[0], ins[1]),
    "Exp": lambda m, ins, a: torch.exp(ins[0]),
    "Relu": lambda m, ins, a: F.relu(ins[0]),
    "LeakyRelu": lambda m, ins, a: F.leaky_relu(ins[0], a.get("alpha", 0.01)),
    "AveragePool": _avgpool,
    "Slice": _slice,
    "Cast": _cast,
    "Concat": lambda m, ins, a: torch.cat(ins, a["axis"]),
    "GreaterOrEqual": lambda m, ins, a: ins[0] >= ins[1],
    "Less": lambda m, ins, a: ins[0] < ins[1],
    "Sigmoid": lambda m, ins, a: torch.sigmoid(ins[0]),
    "Identity": lambda m, ins, a: ins[0],
    "Transpose": lambda m, ins, a: ins[0].permute(*a["perm"]),
    "Reshape": _reshape,
    "Pad": _pad,
    "Gemm": _gemm,
    "ReduceL2": _reduce(lambda x, d, k: torch.linalg.vector_norm(x, 2, d, k), widen=True),
    "ReduceMax": _reduce(torch.amax),
    "ReduceSum": _reduce(torch.sum, widen=True),
}


class OnnxModule(torch.nn.Module):
    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        graph = model.graph
        self.float_dtype = torch.float32  # what float Casts produce: the module's precision
        self.consts: dict[str, Any] = {}  # integer constants as Python lists
        self.keys: dict[str, str] = {}  # float constant name -> buffer name
        for i, t in enumerate(graph.initializer):
            arr = numpy_helper.to_array(t)
            if arr.dtype.kind == "f":
                self.register_buffer(f"c{i}", torch.from_numpy(arr.astype(np.float32).copy()))
                self.keys[t.name] = f"c{i}"
            else:
                self.consts[t.name] = arr.tolist()
        known = {t.name for t in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in known]
        self.output_names = [o.name for o in graph.output]
        self.nodes: list[Node] = []
        for n in graph.node:
            if n.op_type not in OPS:
                raise ModelError(f"the torch runtime has no operator {n.op_type!r} (node {n.name!r})")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            self.nodes.append((n.op_type, list(n.input), list(n.output), attrs))
        # each intermediate is dropped after its last reader, so memory is that of a few layers
        last: dict[str, int] = {}
        for i, (_, ins, _, _) in enumerate(self.nodes):
            for name in ins:
                last[name] = i
        keep = set(self.output_names)
        self.release: list[list[str]] = [[] for _ in self.nodes]
        for name, i in last.items():
            if name not in keep and name not in self.keys and name not in self.consts:
                self.release[i].append(name)

    def _value(self, env: dict[str, Any], name: str) -> Any:
        if name in env:
            return env[name]
        if name in self.keys:
            return getattr(self, self.keys[name])
        return self.consts.get(name)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env: dict[str, Any] = dict(zip(self.input_names, inputs, strict=True))
        for (op, ins, outs, attrs), done in zip(self.nodes, self.release, strict=True):
            env[outs[0]] = OPS[op](self, [self._value(env, i) if i else None for i in ins], attrs)
            for name in done:
                env.pop(name, None)
        return tuple(env[o] for o in self.output_names)
