"""What every peer does per image, written once: the seed request's base64 image -> RGB -> 112x112
-> (x - 127.5) / 128 -> MobileFaceNet (onnxruntime) -> unit-length embedding as a JSON list."""

from __future__ import annotations

import base64
import os

import cv2
import numpy as np
import onnxruntime as ort

MODEL = os.environ.get("PEER_MODEL", "models/mobilefacenet/1/model.onnx")


def session(threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(MODEL, opts, providers=["CPUExecutionProvider"])


def pixels(doc: dict) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(doc["value"][0]), np.uint8)
    rgb = cv2.cvtColor(cv2.imdecode(raw, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return (cv2.resize(rgb, (112, 112)).astype(np.float32) - 127.5) / 128.0


def embed(sess: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
    out = sess.run(None, {sess.get_inputs()[0].name: batch})[0]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def reply(embedding: np.ndarray) -> dict:
    return {"err_no": 0, "key": ["out"], "value": [embedding.tolist()]}
