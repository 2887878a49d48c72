"""Graph rewrites applied before translation: constant dequantisation and PReLU fusion.

TFLite has no PReLU in these graphs; exporters spell it out with elementwise ops. Two spellings are
recognised, whatever the tensor names or shapes:

* ``relu(x) + c * (x - |x|)``      (slope = 2c; the sirius-ai MobileFaceNet export)
* ``relu(x) + c * -relu(-x)``      (slope = c; the facenet MTCNN export)
"""

from __future__ import annotations

import numpy as np

from facepipe.models.convert.tflite_reader import Graph, Op


def fold_dequantize(graph: Graph) -> None:
    """Turn DEQUANTIZE of constant fp16/int8 buffers into float32 constants."""
    kept: list[Op] = []
    for op in graph.ops:
        src = graph.tensors[op.inputs[0]] if op.inputs else None
        if op.kind == "DEQUANTIZE" and src is not None and src.data is not None:
            data = src.data.astype(np.float32)
            if src.scale is not None and src.dtype in (np.int8, np.uint8, np.int16):
                data = (data - src.zero_point) * src.scale
            graph.tensors[op.outputs[0]].data = data.astype(np.float32)
            graph.tensors[op.outputs[0]].dtype = np.float32
            continue
        kept.append(op)
    graph.ops = kept


def _is_const(graph: Graph, t: int) -> bool:
    return graph.tensors[t].data is not None


def _prelu_negative_branch(graph: Graph, producers: dict[int, Op], t: int) -> tuple[int, float] | None:
    """If tensor t is ``x - |x|`` or ``-relu(-x)``, return (x, slope factor)."""
    op = producers.get(t)
    if op is None:
        return None
    if op.kind == "SUB":
        x, ab = op.inputs
        ab_op = producers.get(ab)
        if ab_op is not None and ab_op.kind == "ABS" and ab_op.inputs[0] == x:
            return x, 2.0
    if op.kind == "NEG":
        relu = producers.get(op.inputs[0])
        if relu is not None and relu.kind == "RELU":
            neg = producers.get(relu.inputs[0])
            if neg is not None and neg.kind == "NEG":
                return neg.inputs[0], 1.0
    return None


def _match_prelu(graph: Graph, producers: dict[int, Op], add: Op) -> tuple[int, np.ndarray] | None:
    if add.kind != "ADD" or len(add.inputs) != 2:
        return None
    if add.options is not None and add.options.FusedActivationFunction() != 0:
        return None
    for relu_t, mul_t in (add.inputs, add.inputs[::-1]):
        relu, mul = producers.get(relu_t), producers.get(mul_t)
        if relu is None or mul is None or relu.kind != "RELU" or mul.kind != "MUL":
            continue
        consts = [t for t in mul.inputs if _is_const(graph, t)]
        others = [t for t in mul.inputs if not _is_const(graph, t)]
        if len(consts) != 1 or len(others) != 1:
            continue
        branch = _prelu_negative_branch(graph, producers, others[0])
        if branch is None or branch[0] != relu.inputs[0]:
            continue
        const = np.asarray(graph.tensors[consts[0]].data, dtype=np.float32)
        return branch[0], const * branch[1]
    return None


def fuse_prelu(graph: Graph) -> int:
    """Replace every recognised PReLU spelling by one PRELU op; return how many were fused."""
    producers = {out: op for op in graph.ops for out in op.outputs}
    fused = 0
    for op in graph.ops:
        match = _match_prelu(graph, producers, op)
        if match is None:
            continue
        x, slope = match
        slope_t = graph.add_constant(f"{graph.tensors[op.outputs[0]].name}/prelu_slope", slope)
        op.kind, op.inputs, op.options = "PRELU", [x, slope_t], None
        fused += 1
    _drop_dead_ops(graph)
    return fused


def _drop_dead_ops(graph: Graph) -> None:
    """Remove ops whose outputs nobody reads (the leftovers of fused patterns)."""
    while True:
        used = set(graph.outputs)
        for op in graph.ops:
            used.update(op.inputs)
        live = [op for op in graph.ops if any(o in used for o in op.outputs)]
        if len(live) == len(graph.ops):
            return
        graph.ops = live
