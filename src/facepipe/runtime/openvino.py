"""OpenVINO on CPU: the same ONNX bundle compiled by OpenVINO, one compiled model per worker.

On the CPUs measured (bench/results/cpu-runtimes.md) it runs MobileFaceNet twice as fast as
onnxruntime with the same embeddings (cosine 0.99999994). ``fp32`` is pinned as the inference
precision unless bf16 is asked for: ``precision: auto`` (the default) asks for it where the CPU runs
bf16 natively and the bundle keeps its golden answers (runtime/precision.py).
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import numpy as np

from facepipe.models.bundle import Bundle
from facepipe.runtime import in_chunks

PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


def installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def fits(bundle: Bundle) -> bool:
    """Only the batch axis may vary: per-call spatial shapes (MTCNN's P-Net over an image pyramid)
    would recompile on every new size, which onnxruntime handles better."""
    return all(d > 0 for t in bundle.manifest.inputs for d in t.shape[1:])


def capabilities() -> list[str]:
    """What the CPU plugin runs natively: ``BF16`` only on CPUs with AVX512_BF16 or AMX."""
    return [str(c) for c in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


@functools.cache
def _core() -> Any:
    import openvino as ov

    return ov.Core()


class OpenVinoSession:
    def __init__(self, bundle: Bundle, threads: int = 1, precision: str = "fp32") -> None:
        import openvino as ov

        model = _core().read_model(str(bundle.model_path))
        model.reshape({p.any_name: ov.PartialShape([-1, *p.partial_shape[1:]]) for p in model.inputs})
        # the ONNX graph's tensor names, read before compiling (a compiled port also carries inner names)
        self.input_names = [p.any_name for p in model.inputs]
        self.output_names = [p.any_name for p in model.outputs]
        config = {
            "INFERENCE_NUM_THREADS": max(1, threads),
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": PRECISIONS.get(precision, "f32"),
            # pinned threads would fight the HTTP front end and the other workers for the same cores
            "ENABLE_CPU_PINNING": False,
        }
        self.compiled = _core().compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.max_batch = max(1, bundle.manifest.max_batch)

    def _run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        out = self.request.infer(inputs)  # outputs copied: the next call reuses the request's buffers
        return [np.asarray(out[port]) for port in self.compiled.outputs]

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run on a batch (axis 0), in chunks of at most ``max_batch``; outputs concatenated."""
        return in_chunks(self._run, inputs, self.max_batch)
