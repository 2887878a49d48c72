"""dlib ``dnn`` networks read from their serialised form (dlib/dnn/core.h, layers.h, input.h, loss.h).

A dlib network file is not self-describing: like dlib's own ``deserialize(net)``, reading one needs
the network's type. The type is given here as a list of layers from the input upwards (``Spec``);
tag, skip and ``add_prev`` carry the tag number that the C++ type spells as ``tag1``/``skip1``/...
The stream holds, for ``add_loss_layer<L, add_layer<A, add_tag_layer<...>>>``:

1. the loss layer's version (1) and details;
2. one version per layer, outermost first (add_layer 1/2, tag 1, skip 1; the add_layer directly
   over the input layer 2/3);
3. the input layer's details;
4. for each add_layer, innermost first: its details, then three bools and its x_grad and
   cached_output tensors, then params_grad (version 2) or grad_final (+ the sample expansion factor,
   version 3) for the one over the input.

Layer details carry their own version strings, which are checked against the kind the type names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facepipe.models.convert.dlib_stream import DlibStream

STRUCTURAL = ("tag", "skip")


@dataclass(slots=True)
class DlibLayer:
    """One layer: ``kind`` is the dlib class without its trailing underscore (con, affine, ...)."""

    kind: str
    tag: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(slots=True)
class DlibNet:
    """A network read from a file: input attributes, layers bottom-up, loss attributes."""

    input: dict[str, Any]
    layers: list[DlibLayer]
    loss: dict[str, Any]


Spec = list[tuple[str, int]]


def _block(n_stride: int) -> Spec:
    """``block<N,affine,stride>``: con(stride) affine relu con(1) affine, bottom-up."""
    del n_stride  # the sizes and strides are read from the file; the type fixes only the order
    return [("con", 0), ("affine", 0), ("relu", 0), ("con", 0), ("affine", 0)]


def _ares() -> Spec:
    """``relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>``"""
    return [("tag", 1), *_block(1), ("add_prev", 1), ("relu", 0)]


def _ares_down() -> Spec:
    """``relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>``"""
    return [("tag", 1), *_block(2), ("tag", 2), ("skip", 1), ("avg_pool", 0), ("add_prev", 2), ("relu", 0)]


def face_resnet_spec() -> Spec:
    """``anet_type`` of dlib's examples/dnn_face_recognition_ex.cpp (resnet_model_v1)."""
    spec: Spec = [("con", 0), ("affine", 0), ("relu", 0), ("max_pool", 0)]
    spec += _ares() * 3  # alevel4: 32 filters
    spec += _ares_down() + _ares() * 3  # alevel3: 64
    spec += _ares_down() + _ares() * 2  # alevel2: 128
    spec += _ares_down() + _ares() * 2  # alevel1: 256
    spec += _ares_down()  # alevel0: 256
    return [*spec, ("avg_pool", 0), ("fc", 0)]


def read_net(data: bytes, spec: Spec) -> DlibNet:
    s = DlibStream(data)
    s.expect_version((1,), "add_loss_layer")
    loss = _loss(s)
    if not spec or spec[0][0] in STRUCTURAL:
        raise s.fail("the layer over the input must be a computational layer")
    versions = []
    for i in range(len(spec) - 1, -1, -1):
        kind = spec[i][0]
        allowed = (1,) if kind in STRUCTURAL else (2, 3) if i == 0 else (1, 2)
        versions.append(s.expect_version(allowed, f"layer {i} ({kind})"))
    versions.reverse()
    inp = _input(s)
    layers = []
    for i, (kind, tag) in enumerate(spec):
        layer = DlibLayer(kind, tag)
        if kind not in STRUCTURAL:
            READERS[kind](s, layer)
            _trailer(s, versions[i], over_input=i == 0)
        layers.append(layer)
    if not s.at_end():
        raise s.fail(f"{len(s.data) - s.pos} bytes left after the network")
    return DlibNet(inp, layers, loss)


def _loss(s: DlibStream) -> dict[str, Any]:
    version = s.read_string("the loss layer")
    if version == "loss_metric_":
        return {"kind": "loss_metric", "margin": 0.1, "distance_threshold": 0.75}
    if version == "loss_metric_2":
        return {"kind": "loss_metric", "margin": s.read_float(), "distance_threshold": s.read_float()}
    raise s.fail(f"unsupported loss layer {version!r} (only loss_metric)")


def _input(s: DlibStream) -> dict[str, Any]:
    version = s.read_string("the input layer")
    if version not in ("input_rgb_image", "input_rgb_image_sized"):
        raise s.fail(f"unsupported input layer {version!r}")
    out: dict[str, Any] = {
        "kind": version,
        "avg_rgb": [s.read_float("avg_red"), s.read_float("avg_green"), s.read_float("avg_blue")],
    }
    if version == "input_rgb_image_sized":
        out["nr"], out["nc"] = s.read_int("input nr"), s.read_int("input nc")
    return out


def _trailer(s: DlibStream, version: int, over_input: bool) -> None:
    """What add_layer writes after its details: training state, read and dropped."""
    for what in (
        "this_layer_setup_called",
        "gradient_input_is_stale",
        "get_output_and_gradient_input_disabled",
    ):
        s.read_bool(what)
    s.tensor("x_grad")
    s.tensor("cached_output")
    if over_input:
        s.tensor("grad_final")
        if version >= 3:
            s.read_int("sample_expansion_factor")
    elif version == 2:
        s.tensor("params_grad")


def _slice(params: np.ndarray, offset: int, shape: tuple[int, ...]) -> np.ndarray:
    flat = params.ravel()
    size = math.prod(shape)
    if offset + size > flat.size:
        raise ValueError(f"alias tensor {shape} at {offset} runs past {flat.size} params")
    return flat[offset : offset + size].reshape(shape).copy()


def _version(s: DlibStream, layer: DlibLayer, allowed: tuple[str, ...]) -> str:
    version = s.read_string(f"the {layer.kind} layer")
    if version not in allowed:
        raise s.fail(f"expected a {layer.kind} layer ({'/'.join(allowed)}), found {version!r}")
    return version


def _geometry(s: DlibStream, layer: DlibLayer) -> None:
    for key in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
        layer.attrs[key] = s.read_int(key)


def _con(s: DlibStream, layer: DlibLayer) -> None:
    version = _version(s, layer, ("con_4", "con_5", "con_6"))
    params = s.tensor("con params")
    layer.attrs["num_filters"] = s.read_int("num_filters")
    _geometry(s, layer)
    filters, biases = s.alias_tensor("filters"), s.alias_tensor("biases")
    for what in ("lr", "wd", "bias lr", "bias wd"):
        s.read_float(f"{what} multiplier")
    use_bias = s.read_bool("use_bias") if version in ("con_5", "con_6") else True
    layer.attrs["relu"] = s.read_bool("use_relu") if version == "con_6" else False
    layer.weights["W"] = _slice(params, 0, filters)
    if use_bias:
        layer.weights["B"] = _slice(params, math.prod(filters), (biases[1],))


def _affine(s: DlibStream, layer: DlibLayer) -> None:
    version = s.read_string("the affine layer")
    if version.startswith("bn_"):
        raise s.fail(f"a {version} layer where affine_ was expected: convert bn_ to affine_ in dlib first")
    if version not in ("affine_", "affine_2"):
        raise s.fail(f"expected an affine layer, found {version!r}")
    params = s.tensor("affine params")
    gamma, beta = s.alias_tensor("gamma"), s.alias_tensor("beta")
    layer.attrs["mode"] = "fc" if s.read_int("mode") == 1 else "conv"
    layer.attrs["disabled"] = s.read_bool("disabled") if version == "affine_2" else False
    layer.weights["gamma"] = _slice(params, 0, gamma)
    layer.weights["beta"] = _slice(params, math.prod(gamma), beta)


def _relu(s: DlibStream, layer: DlibLayer) -> None:
    version = _version(s, layer, ("relu_", "relu_2"))
    layer.attrs["disabled"] = s.read_bool("disabled") if version == "relu_2" else False


def _pool(s: DlibStream, layer: DlibLayer) -> None:
    _version(s, layer, (f"{layer.kind}_2",))
    _geometry(s, layer)


def _add_prev(s: DlibStream, layer: DlibLayer) -> None:
    _version(s, layer, ("add_prev_",))


def _fc(s: DlibStream, layer: DlibLayer) -> None:
    version = _version(s, layer, ("fc_2", "fc_3"))
    n_out, n_in = s.read_int("num_outputs"), s.read_int("num_inputs")
    params = s.tensor("fc params")
    weights, biases = s.alias_tensor("weights"), s.alias_tensor("biases")
    bias_mode = s.read_int("bias_mode")  # 0: FC_HAS_BIAS, 1: FC_NO_BIAS
    for what in ("lr", "wd", "bias lr", "bias wd"):
        s.read_float(f"{what} multiplier")
    use_bias = s.read_bool("use_bias") if version == "fc_3" else True
    layer.attrs |= {"num_outputs": n_out, "num_inputs": n_in}
    layer.weights["W"] = _slice(params, 0, weights).reshape(weights[0], weights[1])
    if bias_mode == 0 and use_bias:
        layer.weights["B"] = _slice(params, math.prod(weights), (biases[1],))


READERS = {
    "con": _con,
    "affine": _affine,
    "relu": _relu,
    "max_pool": _pool,
    "avg_pool": _pool,
    "add_prev": _add_prev,
    "fc": _fc,
}
