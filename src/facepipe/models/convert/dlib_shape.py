"""dlib's ``shape_predictor`` (an ensemble of regression trees, Kazemi & Sullivan 2014) read from its
serialised form (dlib/image_processing/shape_predictor.h) without dlib.

The stream: version 1; ``initial_shape`` (a float column matrix: -rows, -cols, values); the forests
(one vector of trees per cascade; a tree: its splits ``(idx1, idx2, thresh)`` in breadth-first order
and its leaf values, each a float column matrix); per cascade the feature pixels' anchor landmark
indices and their deltas (2-d float vectors) from the anchor in the mean shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facepipe.errors import ConversionError, ModelError
from facepipe.models.convert.dlib_stream import DlibStream


@dataclass(slots=True)
class Cascade:
    """One cascade level: its trees as arrays (all trees have the same depth in dlib's models)."""

    idx1: np.ndarray  # (trees, splits) int64: feature indices
    idx2: np.ndarray  # (trees, splits) int64
    thresh: np.ndarray  # (trees, splits) float32
    leaves: np.ndarray  # (trees, leaves, 2 * parts) float32
    anchors: np.ndarray  # (features,) int64: landmark each feature pixel is relative to
    deltas: np.ndarray  # (features, 2) float32: offset from that landmark in the mean shape


@dataclass(slots=True)
class ShapeModel:
    initial_shape: np.ndarray  # (2 * parts,) float32, x0 y0 x1 y1 ... in the box's unit square
    cascades: list[Cascade]

    @property
    def parts(self) -> int:
        return int(self.initial_shape.size // 2)


def _column(s: DlibStream, what: str) -> np.ndarray:
    rows, cols = abs(s.read_int(what)), abs(s.read_int(what))
    return np.array([s.read_float(what) for _ in range(rows * cols)], dtype=np.float32)


def _tree(s: DlibStream) -> tuple[list[tuple[int, int, float]], list[np.ndarray]]:
    splits = [
        (s.read_int("idx1"), s.read_int("idx2"), s.read_float("thresh")) for _ in range(s.read_int("splits"))
    ]
    leaves = [_column(s, "leaf value") for _ in range(s.read_int("leaves"))]
    if len(leaves) != len(splits) + 1:
        raise s.fail(f"a tree with {len(splits)} splits has {len(leaves)} leaves")
    return splits, leaves


def read_shape_predictor(data: bytes) -> ShapeModel:
    s = DlibStream(data)
    s.expect_version((1,), "shape_predictor")
    initial = _column(s, "initial_shape")
    forests = [[_tree(s) for _ in range(s.read_int("trees"))] for _ in range(s.read_int("cascades"))]
    anchors = [
        [s.read_int("anchor") for _ in range(s.read_int("anchors"))] for _ in range(s.read_int("levels"))
    ]
    deltas = [
        [(s.read_float("dx"), s.read_float("dy")) for _ in range(s.read_int("deltas"))]
        for _ in range(s.read_int("levels"))
    ]
    if not s.at_end():
        raise s.fail(f"{len(s.data) - s.pos} bytes left after the shape predictor")
    if not len(forests) == len(anchors) == len(deltas):
        raise ConversionError("shape predictor: cascades, anchors and deltas differ in number")
    cascades = []
    for trees, anchor, delta in zip(forests, anchors, deltas, strict=True):
        if len({len(splits) for splits, _ in trees}) != 1:
            raise ConversionError("shape predictor: trees of one cascade differ in depth")
        cascades.append(
            Cascade(
                np.array([[a for a, _, _ in splits] for splits, _ in trees], dtype=np.int64),
                np.array([[b for _, b, _ in splits] for splits, _ in trees], dtype=np.int64),
                np.array([[t for _, _, t in splits] for splits, _ in trees], dtype=np.float32),
                np.array([np.stack(leaves) for _, leaves in trees], dtype=np.float32),
                np.array(anchor, dtype=np.int64),
                np.array(delta, dtype=np.float32).reshape(-1, 2),
            )
        )
    return ShapeModel(initial, cascades)


FIELDS = ("idx1", "idx2", "thresh", "leaves", "anchors", "deltas")


def shape_arrays(model: ShapeModel) -> dict[str, np.ndarray]:
    """The model as named arrays (for an .npz next to the embedder that needs its landmarks)."""
    out = {"initial_shape": model.initial_shape}
    for i, c in enumerate(model.cascades):
        out |= {f"c{i}_{f}": getattr(c, f) for f in FIELDS}
    return out


def load_shape_model(path: Path) -> ShapeModel:
    try:
        with np.load(path) as data:
            count = sum(1 for k in data.files if k.endswith("_idx1"))
            cascades = [Cascade(*(data[f"c{i}_{f}"] for f in FIELDS)) for i in range(count)]
            return ShapeModel(data["initial_shape"], cascades)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"{path}: not a shape predictor's arrays ({exc})") from exc
