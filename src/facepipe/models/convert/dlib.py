"""dlib ``dnn`` face embedder -> ONNX, read by facepipe itself (no dlib at conversion time).

The graph is NCHW, input ``input`` (batch, 3, nr, nc) holding ``(pixel - avg) / 256`` per RGB channel
(dlib's ``input_rgb_image``), output ``descriptor`` (batch, 128): the network's raw output, as dlib's
``compute_face_descriptor`` returns it (not unit length). Layer by layer:

- ``con``: Conv with dlib's stored strides and padding (+ Relu for ``con_6`` with use_relu);
- ``affine`` (batch norm folded by dlib): Mul by gamma, Add beta;
- ``max_pool``/``avg_pool``: MaxPool/AveragePool, or the Global form for a 0x0 window;
- ``tag``/``skip``/``add_prev``: names of earlier outputs; ``add_prev`` adds two tensors of possibly
  different sizes as dlib's ``tt::add`` does: the missing elements (channels, bottom rows, right
  columns) count as zero, so the smaller one is zero-padded at the end first;
- ``fc``: Flatten (dlib's k, nr, nc order is NCHW's) and MatMul (+ Add).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facepipe.errors import ConversionError
from facepipe.models.bundle import Manifest, Preprocess, Source
from facepipe.models.convert.bundler import fill_io, write_bundle
from facepipe.models.convert.dlib_net import DlibLayer, DlibNet, Spec, face_resnet_spec, read_net
from facepipe.models.convert.dlib_shape import read_shape_predictor, shape_arrays
from facepipe.models.convert.verify import synthetic_images, to_input

LANDMARKS_FILE = "landmarks.npz"
# Defaults for this model, measured on lfw-dev (bench/results/dlib-embedder*.md): /v1/verify's is the
# accuracy-optimal cosine threshold (0.907-0.913). /v1/identify's from 1:N through the server
# (bench/results/accuracy.md, the clean pack's section: 746 people enrolled, 1340 never enrolled):
# at 0.92 61 % of the never-enrolled matched someone, at 0.95 0.6 % (55.7 % of enrolled accepted), as
# MobileFaceNet's default 0.60 does (0.75 %); a 1:1 pair threshold is far too loose for 1:N.
# MobileFaceNet's (0.38, 0.60) would call almost every pair a match: dlib's descriptors of different
# people sit at cosine ~0.85.
VERIFY_THRESHOLD = 0.91
IDENTIFY_THRESHOLD = 0.95
PARITY_TEST = "tests/models/convert/test_dlib.py (cosine >= 0.99999 on real LFW chips)"
OPSET = 17
INPUT, OUTPUT = "input", "descriptor"
Shape = tuple[int, int, int]  # C, H, W


@dataclass(slots=True)
class _Graph:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    count: int = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], prefix: str, **attrs: Any) -> str:
        out = self.name(prefix)
        self.nodes.append(helper.make_node(op_type, inputs, [out], out, None, **attrs))
        return out


def read_dlib(path: Path, spec: Spec | None = None) -> DlibNet:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read ({exc})") from exc
    try:
        return read_net(data, spec or face_resnet_spec())
    except ValueError as exc:
        raise ConversionError(f"{path.name}: {exc}") from exc


def dlib_to_onnx(net: DlibNet) -> onnx.ModelProto:
    """The network as an ONNX model with a dynamic batch axis."""
    if "nr" not in net.input:
        raise ConversionError("only input_rgb_image_sized networks (a fixed input size) are supported")
    g = _Graph()
    cur, shape = INPUT, (3, int(net.input["nr"]), int(net.input["nc"]))
    tags: dict[int, tuple[str, Shape]] = {}
    for i, layer in enumerate(net.layers):
        if layer.kind == "tag":
            tags[layer.tag] = (cur, shape)
        elif layer.kind == "skip":
            cur, shape = _tagged(tags, layer, i)
        elif layer.kind == "add_prev":
            cur, shape = _add_padded(g, (cur, shape), _tagged(tags, layer, i))
        else:
            cur, shape = EMITTERS[layer.kind](g, layer, cur, shape)
    if net.layers[-1].kind != "fc":
        raise ConversionError(
            f"the network must end in an fc layer (a descriptor), not {net.layers[-1].kind}"
        )
    g.nodes.append(helper.make_node("Identity", [cur], [OUTPUT], name=OUTPUT))
    x = helper.make_tensor_value_info(
        INPUT, TensorProto.FLOAT, ["batch", 3, net.input["nr"], net.input["nc"]]
    )
    y = helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", shape[0]])
    graph = helper.make_graph(g.nodes, "dlib_face_resnet", [x], [y], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="facepipe")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _tagged(tags: dict[int, tuple[str, Shape]], layer: DlibLayer, index: int) -> tuple[str, Shape]:
    if layer.tag not in tags:
        raise ConversionError(
            f"layer {index} ({layer.kind}{layer.tag}) refers to tag{layer.tag}, not set below it"
        )
    return tags[layer.tag]


def _add_padded(g: _Graph, a: tuple[str, Shape], b: tuple[str, Shape]) -> tuple[str, Shape]:
    out_shape = (max(a[1][0], b[1][0]), max(a[1][1], b[1][1]), max(a[1][2], b[1][2]))
    names = []
    for src, shape in (a, b):
        name = src
        if shape != out_shape:
            pads = np.array(
                [0, 0, 0, 0, 0, *(o - s for o, s in zip(out_shape, shape, strict=True))], np.int64
            )
            name = g.op("Pad", [name, g.const("pads", pads)], "pad", mode="constant")
        names.append(name)
    return g.op("Add", names, "add_prev"), out_shape


def _out_size(size: int, window: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - window) // stride


def _con(g: _Graph, layer: DlibLayer, x: str, shape: Shape) -> tuple[str, Shape]:
    a = layer.attrs
    inputs = [x, g.const("con_W", layer.weights["W"])]
    if "B" in layer.weights:
        inputs.append(g.const("con_B", layer.weights["B"]))
    py, px = a["padding_y"], a["padding_x"]
    y = g.op(
        "Conv",
        inputs,
        "con",
        kernel_shape=[a["nr"], a["nc"]],
        strides=[a["stride_y"], a["stride_x"]],
        pads=[py, px, py, px],
    )
    out = (
        int(a["num_filters"]),
        _out_size(shape[1], a["nr"], a["stride_y"], py),
        _out_size(shape[2], a["nc"], a["stride_x"], px),
    )
    return (g.op("Relu", [y], "con_relu") if a["relu"] else y), out


def _affine(g: _Graph, layer: DlibLayer, x: str, shape: Shape) -> tuple[str, Shape]:
    if layer.attrs["disabled"]:
        return x, shape
    gamma, beta = layer.weights["gamma"], layer.weights["beta"]
    if layer.attrs["mode"] == "fc":  # one value per element of a (k, nr, nc) sample
        gamma, beta = gamma.reshape(1, *shape), beta.reshape(1, *shape)
    y = g.op("Mul", [x, g.const("gamma", gamma)], "affine_mul")
    return g.op("Add", [y, g.const("beta", beta)], "affine"), shape


def _relu(g: _Graph, layer: DlibLayer, x: str, shape: Shape) -> tuple[str, Shape]:
    return (x if layer.attrs["disabled"] else g.op("Relu", [x], "relu")), shape


def _pool(g: _Graph, layer: DlibLayer, x: str, shape: Shape) -> tuple[str, Shape]:
    a = layer.attrs
    onnx_op = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
    if a["nr"] == 0 and a["nc"] == 0:  # dlib's *_pool_everything: the window is the whole input
        return g.op(f"Global{onnx_op}", [x], layer.kind), (shape[0], 1, 1)
    if a["nr"] == 0 or a["nc"] == 0:
        raise ConversionError(f"{layer.kind} with a window of {a['nr']}x{a['nc']} is not supported")
    py, px = a["padding_y"], a["padding_x"]
    if layer.kind == "avg_pool" and (py or px):
        raise ConversionError(
            "avg_pool with padding is not supported (dlib's border averaging is not checked)"
        )
    y = g.op(
        onnx_op,
        [x],
        layer.kind,
        kernel_shape=[a["nr"], a["nc"]],
        strides=[a["stride_y"], a["stride_x"]],
        pads=[py, px, py, px],
    )
    return y, (
        shape[0],
        _out_size(shape[1], a["nr"], a["stride_y"], py),
        _out_size(shape[2], a["nc"], a["stride_x"], px),
    )


def _fc(g: _Graph, layer: DlibLayer, x: str, shape: Shape) -> tuple[str, Shape]:
    w = layer.weights["W"]
    if w.shape[0] != shape[0] * shape[1] * shape[2]:
        raise ConversionError(f"fc expects {w.shape[0]} inputs, the layer below gives {shape}")
    y = g.op("MatMul", [g.op("Flatten", [x], "flatten", axis=1), g.const("fc_W", w)], "fc")
    if "B" in layer.weights:
        y = g.op("Add", [y, g.const("fc_B", layer.weights["B"])], "fc_bias")
    return y, (w.shape[1], 1, 1)


EMITTERS = {"con": _con, "affine": _affine, "relu": _relu, "max_pool": _pool, "avg_pool": _pool, "fc": _fc}


def install_dlib_embedder(
    dat: Path, root: Path, name: str, source: Source, landmarks: Path | None = None, landmarks_from: str = ""
) -> Manifest:
    """Convert dlib's face ResNet ``dat`` and install it as bundle ``root/<name>/1``; ``landmarks``:
    dlib's 5-point shape predictor, converted to arrays in the bundle (``/v1`` needs it to cut chips).

    The manifest's preprocess is the input layer's own: RGB, ``(pixel - avg) / 256``, 150x150 NCHW.
    The parity reference (dlib itself) is a test-only dependency, so the manifest says where parity is
    checked instead of carrying numbers measured at pull time.
    """
    net = read_dlib(dat)
    model = dlib_to_onnx(net)
    size = [int(net.input["nr"]), int(net.input["nc"])]
    pre = Preprocess("RGB", [float(v) for v in net.input["avg_rgb"]], [256.0] * 3, size)
    manifest = Manifest(
        name=name,
        version=1,
        role="embedding",
        inputs=[],
        outputs=[],
        preprocess=pre,
        normalized=False,
        max_batch=32,
        source=source,
        parity={"reference": "dlib-bin compute_face_descriptor", "checked_by": PARITY_TEST},
        extra={
            "alignment": "dlib-5point-chip",
            "chip_padding": 0.25,
            "distance_threshold": net.loss["distance_threshold"],
            "verify_threshold": VERIFY_THRESHOLD,
            "identify_threshold": IDENTIFY_THRESHOLD,
        },
    )
    fill_io(manifest, model, layout="NCHW")
    manifest.embedding_dim = int(manifest.outputs[0].shape[-1])
    golden = [to_input(img, pre).transpose(0, 3, 1, 2).copy() for img in synthetic_images(2, *size)]
    files: dict[str, bytes] = {}
    if landmarks is not None:
        files[LANDMARKS_FILE], manifest.extra["landmarks"] = _landmarks(landmarks, landmarks_from)
    write_bundle(model, manifest, golden, root, files)
    return manifest


def _landmarks(path: Path, source: str) -> tuple[bytes, dict[str, object]]:
    """dlib's shape predictor file -> (the .npz of its arrays, its manifest entry)."""
    raw = path.read_bytes()
    shape = read_shape_predictor(raw)
    buf = io.BytesIO()
    np.savez_compressed(buf, **shape_arrays(shape))  # type: ignore[arg-type]
    entry = {"file": LANDMARKS_FILE, "parts": shape.parts, "from": source or path.name}
    return buf.getvalue(), entry | {"sha256": hashlib.sha256(raw).hexdigest()}
