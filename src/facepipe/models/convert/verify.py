"""Parity checks: a converted ONNX model against a reference (the TFLite interpreter, ai-edge-litert).

Criteria (per output, over every sample): max |delta| <= 1e-4 of the output's scale (max |reference|)
and cosine(onnx, reference) >= 0.99999 for each sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort

from facepipe.errors import ConversionError
from facepipe.models.bundle import Preprocess

REL_TOL = 1e-4
MIN_COSINE = 0.99999


@dataclass(slots=True)
class OutputParity:
    name: str
    max_abs_diff: float
    scale: float
    min_cosine: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= REL_TOL * max(self.scale, 1e-6) and self.min_cosine >= MIN_COSINE


@dataclass(slots=True)
class Parity:
    reference: str
    samples: int
    outputs: list[OutputParity]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "rel_tol": REL_TOL, "min_cosine_required": MIN_COSINE}


def synthetic_images(n: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random RGB uint8 images (low-frequency noise, like real photos' statistics)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
        big = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        out.append(np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8))
    return out


def to_input(img: np.ndarray, pre: Preprocess) -> np.ndarray:
    """uint8 HxWx3 RGB image -> float32 1xHxWx3 model input."""
    x = pre.normalize(img)
    if pre.transposed:
        x = x.transpose(1, 0, 2)
    return np.ascontiguousarray(x[None])


def run_onnx(model: onnx.ModelProto | Path, samples: list[np.ndarray]) -> list[list[np.ndarray]]:
    src = str(model) if isinstance(model, Path) else model.SerializeToString()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # published graphs carry unused initializers: not worth a warning
    sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return [list(sess.run(None, {name: x})) for x in samples]


def run_tflite(path: Path, samples: list[np.ndarray], output_names: list[str]) -> list[list[np.ndarray]]:
    """Run the TFLite interpreter on each sample (batch 1), outputs in ``output_names`` order."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise ConversionError("parity checks need ai-edge-litert (pip install ai-edge-litert)") from exc
    interp = Interpreter(model_path=str(path))
    inp = interp.get_input_details()[0]
    by_name = {d["name"]: d["index"] for d in interp.get_output_details()}
    declared = tuple(int(d) for d in inp["shape"])
    results: list[list[np.ndarray]] = []
    shape = None
    for x in samples:
        # Graphs with a baked-in batch (a reshape to [B, D]) only run at their declared shape:
        # fill the batch with copies of the sample and read slot 0.
        feed = np.repeat(x, declared[0], axis=0) if x.shape[1:] == declared[1:] else x
        if shape != feed.shape:
            if feed.shape != declared:
                interp.resize_tensor_input(inp["index"], list(feed.shape))
            interp.allocate_tensors()
            shape = feed.shape
        interp.set_tensor(inp["index"], feed)
        interp.invoke()
        results.append([interp.get_tensor(by_name[n])[:1].copy() for n in output_names])
    return results


def compare(
    got: list[list[np.ndarray]], want: list[list[np.ndarray]], names: list[str], reference: str
) -> Parity:
    outputs = []
    for k, name in enumerate(names):
        diffs, cosines, scale = [], [], 0.0
        for g_all, w_all in zip(got, want, strict=True):
            g, w = g_all[k].astype(np.float64).ravel(), w_all[k].astype(np.float64).ravel()
            if g.shape != w.shape:
                raise ConversionError(f"output {name}: shape {g_all[k].shape} != reference {w_all[k].shape}")
            diffs.append(float(np.abs(g - w).max()))
            scale = max(scale, float(np.abs(w).max()))
            denom = float(np.linalg.norm(g) * np.linalg.norm(w))
            cosines.append(float(g @ w) / denom if denom > 0 else float(np.array_equal(g, w)))
        outputs.append(OutputParity(name, max(diffs), scale, min(cosines)))
    return Parity(reference, len(got), outputs)


def tflite_parity(model: onnx.ModelProto, tflite_path: Path, samples: list[np.ndarray]) -> Parity:
    names = [o.name for o in model.graph.output]
    try:
        import ai_edge_litert

        ref = f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '')}".strip()
    except ImportError:
        ref = "ai-edge-litert"
    return compare(run_onnx(model, samples), run_tflite(tflite_path, samples, names), names, ref)


def batch_parity(model: onnx.ModelProto, published: onnx.ModelProto, samples: list[np.ndarray]) -> Parity:
    """``model`` on all samples in one batch against the ``published`` graph one sample per call."""
    stacked = run_onnx(model, [np.concatenate(samples)])[0]
    got = [[out[i : i + 1] for out in stacked] for i in range(len(samples))]
    names = [o.name for o in model.graph.output]
    return compare(got, run_onnx(published, samples), names, "the published graph, one image per call")
