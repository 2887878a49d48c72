"""What every peer does per image, written once: the seed request's base64 image -> RGB -> 112x112
-> (x - 127.5) / 128 -> MobileFaceNet (onnxruntime, or OpenVINO at PEER_PRECISION) -> unit-length
embedding as a JSON list."""

from __future__ import annotations

import base64
import os
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

MODEL = os.environ.get("PEER_MODEL", "models/mobilefacenet/1/model.onnx")


def session(threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(MODEL, opts, providers=["CPUExecutionProvider"])


def openvino_model(hint: str, threads: int = 0, streams: int = 0) -> Any:
    """The model compiled by OpenVINO for the CPU at PEER_PRECISION (bf16 or f32, as facepipe's)."""
    import openvino as ov

    props: dict[str, Any] = {
        "PERFORMANCE_HINT": hint,
        "INFERENCE_PRECISION_HINT": os.environ.get("PEER_PRECISION", "bf16"),
    }
    if threads:
        props["INFERENCE_NUM_THREADS"] = threads
    if streams:
        props["NUM_STREAMS"] = streams
    return ov.Core().compile_model(MODEL, "CPU", props)


def pixels_of(jpeg: bytes) -> np.ndarray:
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return (cv2.resize(rgb, (112, 112)).astype(np.float32) - 127.5) / 128.0


def pixels(doc: dict) -> np.ndarray:
    return pixels_of(base64.b64decode(doc["value"][0]))


def unit(out: np.ndarray) -> np.ndarray:
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def embed(sess: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
    return unit(sess.run(None, {sess.get_inputs()[0].name: batch})[0])


def reply(embedding: np.ndarray) -> dict:
    return {"err_no": 0, "key": ["out"], "value": [embedding.tolist()]}
