"""Inference runtimes: onnxruntime on CPU (the default), PyTorch on CUDA (or CPU) for the same bundle.

``open_session(bundle, spec)`` gives a ready (warmed-up) object with ``input_names``, ``output_names`` and
``run(inputs) -> outputs``; the torch one also has ``run_pixels(uint8 NHWC)`` (normalised on device).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from facepipe.serving.bundle import Bundle


class Session(Protocol):
    input_names: list[str]
    output_names: list[str]

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]: ...


@dataclass(slots=True, frozen=True)
class RuntimeSpec:
    """How a worker runs its bundle: the seed's ``thread_num``, ``device_type``, ``devices`` and
    ``precision``, and facepipe's ``engine``."""

    threads: int = 1
    device: str = "cpu"  # "cpu" or "cuda"
    index: int = 0
    precision: str = "fp32"
    engine: str = "onnxruntime"  # "onnxruntime" or "torch" (always torch on CUDA)
    cuda_graphs: bool = True
    max_batch: int = 0  # largest batch one call takes on a GPU (CUDA graph buckets up to it); 0: 512

    def without_graphs(self) -> RuntimeSpec:
        """For nets whose input shapes vary per call (MTCNN's P-Net over an image pyramid)."""
        return replace(self, cuda_graphs=False)


CPU = RuntimeSpec()


def open_session(bundle: Bundle, spec: RuntimeSpec = CPU) -> Any:
    if spec.device == "cuda" or spec.engine == "torch":
        from facepipe.serving.runtime.torch_cuda import Device, shared_session

        device = Device(spec.device, spec.index, spec.precision, spec.cuda_graphs, spec.max_batch)
        session = shared_session(bundle, device)
        session.warmup()  # CUDA graphs of every batch bucket captured now, not on live requests
        return session
    from facepipe.serving.runtime.onnx import OnnxSession

    return OnnxSession(bundle, spec.threads)
