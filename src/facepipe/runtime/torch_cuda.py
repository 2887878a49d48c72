"""PyTorch runtime: a bundle's ONNX graph on CUDA (or CPU), fp16 or fp32, channels-last, with one CUDA
graph per batch-size bucket (a batch is padded up to its bucket and the graph replayed).

With ``compile``, the module is compiled by ``torch.compile`` (Inductor fuses the per-element work the
eager module runs as separate kernels: bias adds, PReLU, one-sided pads) before each bucket's CUDA graph
is captured; compiled graphs are kept on disk (``compile_cache``) so that a restart or a reload of the
same bundle does not compile again (bench/results/gpu-ceiling.md has both costs).

``run_pixels`` takes uint8 NHWC images and does the normalisation on the device: a quarter of the
bytes cross PCIe and the CPU does no float work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from facepipe.models.bundle import Bundle
from facepipe.runtime.torch_graph import OnnxModule

log = logging.getLogger(__name__)
BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# One capture at a time in the process: workers of other stages keep running on their own streams
# (capture_error_mode="thread_local"), but two captures must not overlap.
_CAPTURE = threading.Lock()


@dataclass(slots=True, frozen=True)
class Device:
    """Where a bundle runs: the seed's ``device_type`` (0 CPU, 1 GPU), ``devices`` and ``precision``."""

    kind: str = "cpu"  # "cpu" or "cuda"
    index: int = 0
    precision: str = "fp32"  # "fp32" or "fp16"
    cuda_graphs: bool = True
    max_batch: int = 0  # 0: the largest bucket
    compile: bool = False
    compile_cache: str = ""

    @property
    def torch_device(self) -> torch.device:
        return torch.device(f"cuda:{self.index}" if self.kind == "cuda" else "cpu")


@dataclass(slots=True)
class _Graph:
    graph: torch.cuda.CUDAGraph
    x: torch.Tensor  # static input
    outs: tuple[torch.Tensor, ...]  # static outputs


_SESSIONS: dict[tuple[str, str, int, str, bool, bool], TorchSession] = {}


def compile_cache_dir(configured: str) -> Path:
    """Inductor's cache directory (read from the environment when it compiles): the configured one,
    else ~/.cache/facepipe/torch-compile, which outlives /tmp and the process."""
    path = Path(configured or Path.home() / ".cache" / "facepipe" / "torch-compile").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    return path


def compiled(module: torch.nn.Module, cache: str) -> Any:
    """``module`` under ``torch.compile``: one static-shape graph per batch bucket, no graph breaks."""
    where = compile_cache_dir(cache)
    log.info("torch.compile of %s, cache %s", type(module).__name__, where)
    return torch.compile(module, dynamic=False, fullgraph=True)


_SESSIONS_LOCK = threading.Lock()


def shared_session(bundle: Bundle, device: Device) -> TorchSession:
    """One session per bundle and device in a process: the workers and stages that run the same model
    on one GPU share its weights and CUDA graphs (calls are serialised by the session's lock, as the
    GPU would serialise them anyway). On CPU each caller gets its own."""
    if device.kind != "cuda":
        return TorchSession(bundle, device)
    key = (
        str(bundle.path.resolve()),
        device.kind,
        device.index,
        device.precision,
        device.cuda_graphs,
        device.compile,
    )
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            session = _SESSIONS[key] = TorchSession(bundle, device)
        session.max_batch = max(session.max_batch, device.max_batch or BUCKETS[-1])
        return session


class TorchSession:
    def __init__(self, bundle: Bundle, device: Device) -> None:
        self.bundle, self.device = bundle, device
        self.dtype = (
            torch.float16 if device.precision.lower() == "fp16" and device.kind == "cuda" else torch.float32
        )
        module = OnnxModule(onnx.load(str(bundle.model_path))).eval()
        self.module = module.to(device.torch_device, self.dtype)
        module.float_dtype = self.dtype
        self._call: Any = module
        if device.compile and device.kind == "cuda":
            self._call = compiled(module, device.compile_cache)
        self.compile_s = 0.0  # time spent compiling (0 when every bucket came from the cache quickly)
        self.input_names, self.output_names = module.input_names, module.output_names
        # on a GPU, batches up to the largest bucket run in one call (the manifest's limit is for CPU)
        self.max_batch = (
            (device.max_batch or BUCKETS[-1]) if device.kind == "cuda" else max(1, bundle.manifest.max_batch)
        )
        pre = bundle.manifest.preprocess
        self._mean = torch.tensor(pre.mean, device=device.torch_device, dtype=torch.float32)
        self._std = torch.tensor(pre.std, device=device.torch_device, dtype=torch.float32)
        self._bgr = pre.color.upper() == "BGR"
        self._nchw = bundle.manifest.inputs[0].layout == "NCHW"
        self._graphs: dict[tuple[int, ...], _Graph] = {}
        self._pool: Any = None
        self._lock = threading.Lock()
        self._use_graphs = device.kind == "cuda" and device.cuda_graphs
        # Every session works on a stream of its own, never the legacy default stream, which would
        # tie it to whatever another worker is capturing.
        cuda = device.kind == "cuda"
        self._stream = torch.cuda.Stream(device.torch_device) if cuda else None  # type: ignore[no-untyped-call]
        # Waiting on the GPU: a blocking event sleeps in the driver. A plain .cpu() spins a core per
        # waiting thread, and with one process per front end those spinning cores were most of the
        # CPU the HTTP front ends needed (75 % of 16 cores busy at half the peak rate).
        self._done = torch.cuda.Event(blocking=True) if cuda else None  # type: ignore[no-untyped-call]

    def _bucket(self, n: int) -> int:
        return next((b for b in BUCKETS if b >= n), n)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = x.shape[0]
        if not self._use_graphs:
            with torch.inference_mode():
                return tuple(self._call(x))
        size = self._bucket(n)
        key = (size, *x.shape[1:])
        g = self._graphs.get(key) or self._capture(key)
        g.x[:n].copy_(x)
        g.graph.replay()
        return tuple(o[:n] for o in g.outs)

    def _capture(self, key: tuple[int, ...]) -> _Graph:
        x = torch.zeros(key, device=self.device.torch_device, dtype=self.dtype)
        with _CAPTURE, torch.inference_mode():
            t0 = time.perf_counter()
            for _ in range(2):  # warm up on this stream (cuDNN picks its kernels; compiles) before capture
                self._call(x)
            self.compile_s += time.perf_counter() - t0 if self._call is not self.module else 0.0
            graph = torch.cuda.CUDAGraph()
            # one memory pool for all of this session's graphs (they never run at once: the session
            # lock), sized by the largest bucket, which warmup captures first
            with torch.cuda.graph(graph, self._pool, self._stream, capture_error_mode="thread_local"):
                outs = tuple(self._call(x))
            self._pool = self._pool or graph.pool()
        self._graphs[key] = _Graph(graph, x, outs)
        log.info("%s: CUDA graph captured for input %s", self.bundle.manifest.name, list(key))
        return self._graphs[key]

    def warmup(self, shape: tuple[int, ...] | None = None) -> None:
        """Capture the graph of every batch bucket up to ``max_batch`` now, not on live requests.
        ``shape``: one item's input shape (default: the bundle's, when it is fixed)."""
        spec = self.bundle.manifest.inputs[0].shape[1:]
        item = shape or tuple(spec)
        if not self._use_graphs or any(d is None or d < 0 for d in item):
            return
        with self._lock, torch.cuda.stream(self._stream):
            for b in sorted((b for b in BUCKETS if b <= self.max_batch), reverse=True):
                if (b, *item) not in self._graphs:
                    self._capture((b, *item))
            torch.cuda.current_stream().synchronize()

    def _on_stream(self) -> Any:
        return torch.cuda.stream(self._stream) if self._stream is not None else contextlib.nullcontext()

    def _upload(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(batch, torch.Tensor):  # already a tensor (on the device: the photo path's crops)
            return batch.to(self.device.torch_device, non_blocking=True)
        t = torch.from_numpy(np.ascontiguousarray(batch))
        if self._done is None:
            return t.to(self.device.torch_device)
        return t.pin_memory().to(self.device.torch_device, non_blocking=True)  # no wait on the host

    def _numpy(self, outs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
        if self._done is None:
            return [o.float().cpu().numpy() for o in outs]
        hosts = [torch.empty(o.shape, dtype=torch.float32, pin_memory=True) for o in outs]
        for host, out in zip(hosts, outs, strict=True):
            host.copy_(out.float(), non_blocking=True)
        self._done.record(self._stream)
        self._done.synchronize()
        return [h.numpy().copy() for h in hosts]  # the pinned buffers go back to torch's cache

    def _chunked(
        self, batch: np.ndarray | torch.Tensor, prepare: Callable[[torch.Tensor], torch.Tensor]
    ) -> list[np.ndarray]:
        """``batch`` in calls of at most ``max_batch``, each uploaded and ``prepare``d on the device."""
        parts = []
        if isinstance(batch, torch.Tensor) and batch.is_cuda and self._stream is not None:
            # a tensor the caller made on its own stream: this session's stream waits for that work,
            # and the allocator keeps its memory until this stream is done with it
            self._stream.wait_stream(torch.cuda.current_stream(batch.device))
            batch.record_stream(self._stream)
        with self._lock, self._on_stream():
            for i in range(0, batch.shape[0], self.max_batch):
                t = self._upload(batch[i : i + self.max_batch])
                parts.append(self._numpy(self._forward(prepare(t))))
        return [np.concatenate([p[k] for p in parts]) for k in range(len(self.output_names))]

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Like ``OnnxSession.run``: float inputs (already normalised), outputs as float32 arrays."""
        return self._chunked(next(iter(inputs.values())), lambda t: t.to(self.dtype))

    def run_pixels(self, pixels: np.ndarray | torch.Tensor) -> list[np.ndarray]:
        """uint8 NHWC RGB images at the model's input size, normalised on the device (an array, or a
        tensor already on the device, which is not copied through the host)."""

        def normalise(t: torch.Tensor) -> torch.Tensor:
            t = t.float().flip(-1) if self._bgr else t.float()
            x = ((t - self._mean) / self._std).to(self.dtype)
            return x.permute(0, 3, 1, 2) if self._nchw else x

        return self._chunked(pixels, normalise)
