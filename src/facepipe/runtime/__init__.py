"""Inference runtimes for the same ONNX bundle: OpenVINO or onnxruntime on CPU, PyTorch on CUDA (or CPU).

``open_session(bundle, spec)`` gives a ready (warmed-up) object with ``input_names``, ``output_names`` and
``run(inputs) -> outputs``; the torch one also has ``run_pixels(uint8 NHWC)`` (normalised on device).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from facepipe.engine.worker import worker_index
from facepipe.models.bundle import Bundle
from facepipe.runtime import precision
from facepipe.runtime.precision import Choice

if TYPE_CHECKING:  # the runtime loads without the server's config schema (pydantic), e.g. on a GPU box
    from facepipe.config import OpConfig


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
    devices: tuple[int, ...] = ()  # every GPU listed in ``devices``: worker i runs on devices[i % n]
    precision: str = "auto"  # "auto" (bf16 where native and golden-safe, else fp32), "fp32", "bf16", "fp16"
    engine: str = "auto"  # "auto", "onnxruntime", "openvino" or "torch" (always torch on CUDA)
    cuda_graphs: bool = True
    compile: bool = False  # GPU: torch.compile the module before its CUDA graphs are captured
    compile_cache: str = ""  # torch.compile's on-disk cache; "": ~/.cache/facepipe/torch-compile
    max_batch: int = 0  # largest batch one call takes on a GPU (CUDA graph buckets up to it); 0: 512

    def for_worker(self, worker: int) -> RuntimeSpec:
        """The spec a stage's worker ``worker`` opens: its own GPU of ``devices`` in turn."""
        if self.device != "cuda" or len(self.devices) < 2:
            return self
        return replace(self, index=self.devices[worker % len(self.devices)])

    def without_graphs(self) -> RuntimeSpec:
        """For nets whose input shapes vary per call (MTCNN's P-Net over an image pyramid)."""
        return replace(self, cuda_graphs=False)


CPU = RuntimeSpec()
Run = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


def in_chunks(run: Run, inputs: dict[str, np.ndarray], max_batch: int) -> list[np.ndarray]:
    """``run`` over a batch (axis 0) in calls of at most ``max_batch``; outputs concatenated."""
    n = next(iter(inputs.values())).shape[0]
    if n <= max_batch:
        return run(inputs)
    parts = [run({k: v[i : i + max_batch] for k, v in inputs.items()}) for i in range(0, n, max_batch)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def cpu_engine(bundle: Bundle, engine: str) -> str:
    """``auto`` on CPU: OpenVINO where it is installed and the bundle's inputs vary only in batch
    (measured twice as fast as onnxruntime, bench/results/cpu-runtimes.md), else onnxruntime."""
    if engine != "auto":
        return engine
    from facepipe.runtime import openvino

    return "openvino" if openvino.installed() and openvino.fits(bundle) else "onnxruntime"


def engine_of(bundle: Bundle, spec: RuntimeSpec = CPU) -> str:
    """The engine ``open_session`` runs ``bundle`` with: openvino, onnxruntime or torch."""
    return "torch" if spec.device == "cuda" else cpu_engine(bundle, spec.engine)


def platform_of(bundle: Bundle, spec: RuntimeSpec = CPU) -> str:
    """The KServe/Triton platform string of the engine that runs the bundle (``openvino_onnx``,
    ``onnxruntime_onnx``, ``pytorch_onnx``): what metadata reports, not a fixed guess."""
    engine = engine_of(bundle, spec)
    return ("pytorch" if engine == "torch" else engine) + "_onnx"


def precision_of(bundle: Bundle, spec: RuntimeSpec = CPU) -> Choice:
    """The precision ``open_session(bundle, spec)`` runs at, and why (``auto`` resolved)."""
    return precision.resolve(bundle, spec.precision, engine_of(bundle, spec))


def pinned(bundle: Bundle, spec: RuntimeSpec) -> RuntimeSpec:
    """``spec`` with ``auto`` precision resolved for ``bundle``: decided once, in the process that builds
    the pipeline, rather than again in every worker process."""
    return replace(spec, precision=precision_of(bundle, spec).precision)


def open_session(bundle: Bundle, spec: RuntimeSpec = CPU) -> Any:
    """A session of ``bundle``; called in a stage worker's setup, on that worker's GPU of ``devices``."""
    spec = spec.for_worker(worker_index())
    engine = engine_of(bundle, spec)
    chosen = precision.resolve(bundle, spec.precision, engine).precision
    if engine == "torch":
        from facepipe.runtime.torch_cuda import Device, shared_session

        device = Device(
            spec.device,
            spec.index,
            chosen,
            spec.cuda_graphs,
            spec.max_batch,
            spec.compile,
            spec.compile_cache,
        )
        session = shared_session(bundle, device)
        session.warmup()  # CUDA graphs of every batch bucket captured now, not on live requests
        return session
    if engine == "openvino":
        from facepipe.runtime.openvino import OpenVinoSession

        return OpenVinoSession(bundle, spec.threads, chosen)
    from facepipe.runtime.onnx import OnnxSession

    return OnnxSession(bundle, spec.threads)


def runtime_spec(op: OpConfig) -> RuntimeSpec:
    """The seed's device keys as a runtime: ``device_type`` 1 (GPU) runs on CUDA ``devices`` with
    PyTorch, the op's workers spread over the listed GPUs in turn; 0 runs on CPU with ``engine``
    (``auto``: OpenVINO where it fits)."""
    c = op.local_service_conf
    gpu = c.device_type == 1
    listed = tuple(int(d) for d in c.devices.split(",") if d.strip().isdigit())
    engine = "torch" if gpu else c.engine
    return RuntimeSpec(
        threads=c.thread_num,
        device="cuda" if gpu else "cpu",
        index=listed[0] if listed else 0,
        devices=listed,
        precision=c.precision.lower(),
        engine=engine,
        cuda_graphs=c.cuda_graphs,
        compile=c.compile and gpu,
        compile_cache=c.compile_cache,
        max_batch=op.batch_size if gpu else 0,
    )
