"""One translation function per TFLite op kind; each reads its inputs from the Emitter in the layout
it needs and records its output with the layout it produced."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from onnx import helper

from facepipe.errors import ConversionError

if TYPE_CHECKING:
    from facepipe.models.convert.tflite import Emitter
    from facepipe.models.convert.tflite_reader import Op

Handler = Callable[["Emitter", "Op"], None]
AXIS_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}
INT64_MAX = np.iinfo(np.int64).max


def _pads(opts: Any) -> dict[str, Any]:
    return {"auto_pad": "SAME_UPPER" if opts.Padding() == 0 else "VALID"}


def conv(em: Emitter, op: Op, depthwise: bool = False) -> None:
    opts = op.options
    x = em.get(op.inputs[0], "nchw")
    weights = em.data(op.inputs[1])
    if depthwise:  # [1, KH, KW, C*M] -> [C*M, 1, KH, KW], one group per input channel
        w, group = weights.transpose(3, 0, 1, 2), em.graph.tensors[op.inputs[0]].shape[3]
    else:  # [O, KH, KW, I] -> [O, I, KH, KW]
        w, group = weights.transpose(0, 3, 1, 2), 1
    ins = [x, em.const(w.astype(np.float32), "w")]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        ins.append(em.const(em.data(op.inputs[2]).astype(np.float32), "b"))
    out = em.node(
        "Conv",
        ins,
        strides=[opts.StrideH(), opts.StrideW()],
        dilations=[opts.DilationHFactor(), opts.DilationWFactor()],
        kernel_shape=list(w.shape[2:]),
        group=int(group),
        **_pads(opts),
    )
    em.set(op.outputs[0], em.activation(out, opts.FusedActivationFunction()), nchw=True)


def pool(em: Emitter, op: Op, onnx_op: str) -> None:
    opts = op.options
    out = em.node(
        onnx_op,
        [em.get(op.inputs[0], "nchw")],
        kernel_shape=[opts.FilterHeight(), opts.FilterWidth()],
        strides=[opts.StrideH(), opts.StrideW()],
        **_pads(opts),
    )
    em.set(op.outputs[0], em.activation(out, opts.FusedActivationFunction()), nchw=True)


def fully_connected(em: Emitter, op: Op) -> None:
    opts = op.options
    w = em.data(op.inputs[1]).astype(np.float32)  # [O, I]
    if opts is not None and opts.KeepNumDims():
        raise ConversionError(f"{em.graph.name}: FULLY_CONNECTED with keep_num_dims is not supported")
    x = em.node("Reshape", [em.get(op.inputs[0], "nhwc"), em.const(np.array([-1, w.shape[1]], np.int64))])
    ins = [x, em.const(w, "fc_w")]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        ins.append(em.const(em.data(op.inputs[2]).astype(np.float32), "fc_b"))
    out = em.node("Gemm", ins, transB=1)
    em.set(op.outputs[0], em.activation(out, opts.FusedActivationFunction() if opts else 0), nchw=False)


def _common_layout(em: Emitter, inputs: list[int]) -> str:
    live = [t for t in inputs if not em.is_const(t)]
    if live and all(em.values[t].rank == 4 for t in live) and any(em.values[t].nchw for t in live):
        return "nchw"
    return "nhwc"


def binary(onnx_op: str) -> Handler:
    def handle(em: Emitter, op: Op) -> None:
        layout = _common_layout(em, op.inputs)
        out = em.node(onnx_op, [em.get(t, layout) for t in op.inputs])
        act = op.options.FusedActivationFunction() if op.options is not None else 0
        em.set(op.outputs[0], em.activation(out, act), nchw=layout == "nchw")

    return handle


def unary(onnx_op: str, **attrs: Any) -> Handler:
    def handle(em: Emitter, op: Op) -> None:
        v = em.values[op.inputs[0]]
        em.set(op.outputs[0], em.node(onnx_op, [em.get(op.inputs[0], "any")], **attrs), nchw=v.nchw)

    return handle


def prelu(em: Emitter, op: Op) -> None:
    layout = _common_layout(em, op.inputs[:1])
    out = em.node("PRelu", [em.get(op.inputs[0], layout), em.get(op.inputs[1], layout)])
    em.set(op.outputs[0], out, nchw=layout == "nchw")


def leaky_relu(em: Emitter, op: Op) -> None:
    unary("LeakyRelu", alpha=float(op.options.Alpha()))(em, op)


def cast(em: Emitter, op: Op) -> None:
    to = helper.np_dtype_to_tensor_dtype(np.dtype(em.graph.tensors[op.outputs[0]].dtype))
    unary("Cast", to=int(to))(em, op)


def relu6(em: Emitter, op: Op) -> None:
    v = em.values[op.inputs[0]]
    em.set(op.outputs[0], em.activation(em.get(op.inputs[0], "any"), 3), nchw=v.nchw)


def rsqrt(em: Emitter, op: Op) -> None:
    v = em.values[op.inputs[0]]
    root = em.node("Sqrt", [em.get(op.inputs[0], "any")])
    em.set(op.outputs[0], em.node("Reciprocal", [root]), nchw=v.nchw)


def reduce(onnx_op: str) -> Handler:
    def handle(em: Emitter, op: Op) -> None:
        rank = em.rank(op.inputs[0])
        axes = [int(a) % rank for a in np.atleast_1d(em.data(op.inputs[1]))]
        keep = bool(op.options.KeepDims()) if op.options is not None else False
        nchw = keep and em.values[op.inputs[0]].nchw
        x = em.get(op.inputs[0], "nchw" if nchw else "nhwc")
        if nchw:
            axes = [AXIS_TO_NCHW[a] for a in axes]
        out = em.node(onnx_op, [x, em.const(np.array(axes, np.int64))], keepdims=int(keep))
        em.set(op.outputs[0], out, nchw=nchw)

    return handle


def concatenation(em: Emitter, op: Op) -> None:
    rank = em.rank(op.outputs[0])
    axis = op.options.Axis() % rank
    layout = _common_layout(em, op.inputs)
    if layout == "nchw":
        axis = AXIS_TO_NCHW[axis]
    out = em.node("Concat", [em.get(t, layout) for t in op.inputs], axis=axis)
    em.set(op.outputs[0], em.activation(out, op.options.FusedActivationFunction()), nchw=layout == "nchw")


def reshape(em: Emitter, op: Op) -> None:
    if len(op.inputs) > 1 and op.inputs[1] >= 0:
        target = [int(d) for d in em.data(op.inputs[1])]
    else:
        target = [int(d) for d in op.options.NewShapeAsNumpy()]
    in_shape = em.graph.tensors[op.inputs[0]].shape
    if em.dynamic_batch and target and in_shape and target[0] == in_shape[0]:
        target[0] = 0  # ONNX: copy the (dynamic) batch dimension from the input
    x = em.get(op.inputs[0], "nhwc")
    em.set(op.outputs[0], em.node("Reshape", [x, em.const(np.array(target, np.int64))]), nchw=False)


def softmax(em: Emitter, op: Op) -> None:
    x = em.get(op.inputs[0], "nhwc")
    beta = float(op.options.Beta()) if op.options is not None else 1.0
    if beta != 1.0:
        x = em.node("Mul", [x, em.const(np.array(beta, np.float32))])
    em.set(op.outputs[0], em.node("Softmax", [x], axis=-1), nchw=False)


def strided_slice(em: Emitter, op: Op) -> None:
    o = op.options
    if o.EllipsisMask() or o.NewAxisMask():
        raise ConversionError(
            f"{em.graph.name}: STRIDED_SLICE with ellipsis or new-axis masks is not supported"
        )
    begin, end, strides = (em.data(t).astype(np.int64).copy() for t in op.inputs[1:4])
    in_shape = em.graph.tensors[op.inputs[0]].shape
    for axis in range(len(begin)):
        if o.BeginMask() >> axis & 1:
            begin[axis] = 0 if strides[axis] > 0 else INT64_MAX
        if o.EndMask() >> axis & 1 or (axis == 0 and em.dynamic_batch and end[0] == in_shape[0]):
            end[axis] = INT64_MAX if strides[axis] > 0 else -INT64_MAX
        if o.ShrinkAxisMask() >> axis & 1:
            end[axis] = begin[axis] + 1
    axes = np.arange(len(begin), dtype=np.int64)
    ins = [em.get(op.inputs[0], "nhwc")] + [em.const(a) for a in (begin, end, axes, strides)]
    out = em.node("Slice", ins)
    shrink = [a for a in range(len(begin)) if o.ShrinkAxisMask() >> a & 1]
    if shrink:
        out = em.node("Squeeze", [out, em.const(np.array(shrink, np.int64))])
    em.set(op.outputs[0], out, nchw=False)


def l2_normalization(em: Emitter, op: Op) -> None:
    x = em.get(op.inputs[0], "nhwc")
    norm = em.node("ReduceL2", [x, em.const(np.array([-1], np.int64))], keepdims=1)
    norm = em.node("Max", [norm, em.const(np.array(1e-12, np.float32))])
    em.set(op.outputs[0], em.node("Div", [x, norm]), nchw=False)


def pad(em: Emitter, op: Op) -> None:
    """PAD / PADV2 with constant paddings (zeros, or PADV2's constant) in the input's own layout."""
    pads = em.data(op.inputs[1]).astype(np.int64).reshape(-1, 2)
    v = em.values[op.inputs[0]]
    if v.nchw:
        pads = pads[[0, 3, 1, 2]]
    ins = [em.get(op.inputs[0], "any"), em.const(np.concatenate([pads[:, 0], pads[:, 1]]))]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        ins.append(em.const(em.data(op.inputs[2]).astype(np.float32).reshape(()), "pad_value"))
    em.set(op.outputs[0], em.node("Pad", ins, mode="constant"), nchw=v.nchw)


def resize_bilinear(em: Emitter, op: Op) -> None:
    """RESIZE_BILINEAR to a constant size; TFLite's align_corners / half_pixel_centers as ONNX's
    coordinate transformation modes."""
    opts = op.options
    if opts is not None and opts.AlignCorners():
        mode = "align_corners"
    elif opts is not None and opts.HalfPixelCenters():
        mode = "half_pixel"
    else:
        mode = "asymmetric"
    x = em.get(op.inputs[0], "nchw")
    in_h, in_w = em.graph.tensors[op.inputs[0]].shape[1:3]
    out_h, out_w = (int(d) for d in em.data(op.inputs[1]))
    scales = em.const(np.array([1.0, 1.0, out_h / in_h, out_w / in_w], np.float32), "scales")
    out = em.node("Resize", [x, "", scales], mode="linear", coordinate_transformation_mode=mode)
    em.set(op.outputs[0], out, nchw=True)


HANDLERS: dict[str, Handler] = {
    "CONV_2D": conv,
    "DEPTHWISE_CONV_2D": lambda em, op: conv(em, op, depthwise=True),
    "MAX_POOL_2D": lambda em, op: pool(em, op, "MaxPool"),
    "AVERAGE_POOL_2D": lambda em, op: pool(em, op, "AveragePool"),
    "FULLY_CONNECTED": fully_connected,
    "ADD": binary("Add"),
    "SUB": binary("Sub"),
    "MUL": binary("Mul"),
    "DIV": binary("Div"),
    "MAXIMUM": binary("Max"),
    "MINIMUM": binary("Min"),
    "GREATER": binary("Greater"),
    "GREATER_EQUAL": binary("GreaterOrEqual"),
    "LESS": binary("Less"),
    "LESS_EQUAL": binary("LessOrEqual"),
    "EQUAL": binary("Equal"),
    "RELU": unary("Relu"),
    "RELU6": relu6,
    "ABS": unary("Abs"),
    "NEG": unary("Neg"),
    "EXP": unary("Exp"),
    "SQRT": unary("Sqrt"),
    "RSQRT": rsqrt,
    "LOGISTIC": unary("Sigmoid"),
    "TANH": unary("Tanh"),
    "LEAKY_RELU": leaky_relu,
    "PRELU": prelu,
    "CAST": cast,
    "REDUCE_MAX": reduce("ReduceMax"),
    "SUM": reduce("ReduceSum"),
    "MEAN": reduce("ReduceMean"),
    "CONCATENATION": concatenation,
    "RESHAPE": reshape,
    "SOFTMAX": softmax,
    "STRIDED_SLICE": strided_slice,
    "L2_NORMALIZATION": l2_normalization,
    "PAD": pad,
    "PADV2": pad,
    "RESIZE_BILINEAR": resize_bilinear,
}
