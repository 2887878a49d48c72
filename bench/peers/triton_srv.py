"""Peer (e): NVIDIA Triton Inference Server (the server binary shipped in nvidia-pytriton) with its
dynamic batcher, speaking KServe v2 like facepipe's /v2 routes. The bound Python function decodes the
batch's JPEGs and runs the model on OpenVINO at PEER_PRECISION. Tuned: PEER_INSTANCES (model instances,
each with its own infer request and PEER_THREADS threads), PEER_BATCH (max batch), PEER_DELAY_US (the
batcher's max queue delay)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import numpy as np
from common import openvino_model, pixels_of, unit
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def instance(compiled: Any) -> Callable[..., dict[str, np.ndarray]]:
    request = compiled.create_infer_request()

    @batch
    def infer(image: np.ndarray) -> dict[str, np.ndarray]:
        pix = np.stack([pixels_of(bytes(row[0])) for row in image])
        return {"embedding": unit(request.infer({0: pix})[0]).astype(np.float32)}

    return infer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    instances = int(os.environ.get("PEER_INSTANCES", "2"))
    threads = int(os.environ.get("PEER_THREADS", "1"))
    compiled = openvino_model("LATENCY", threads=threads)
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=int(os.environ["PEER_PORT"]),
        grpc_address="127.0.0.1",
        grpc_port=free_port(),
        metrics_port=free_port(),
        log_verbose=0,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name="ArcFace",
            infer_func=[instance(compiled) for _ in range(instances)],
            inputs=[Tensor(name="image", dtype=bytes, shape=(1,))],
            outputs=[Tensor(name="embedding", dtype=np.float32, shape=(-1,))],
            config=ModelConfig(
                max_batch_size=int(os.environ.get("PEER_BATCH", "16")),
                batcher=DynamicBatcher(
                    max_queue_delay_microseconds=int(os.environ.get("PEER_DELAY_US", "2000"))
                ),
            ),
            strict=False,
        )
        triton.serve()


if __name__ == "__main__":
    main()
