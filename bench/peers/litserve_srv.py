"""Peer (b): LitServe with its dynamic batching (max_batch_size, batch_timeout from the environment)."""

from __future__ import annotations

import os

import litserve as ls
import numpy as np
from common import embed, pixels, reply, session


class FaceAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.sess = session(int(os.environ.get("PEER_THREADS", "1")))

    def decode_request(self, request: dict) -> np.ndarray:
        return pixels(request)

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.stack(inputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return embed(self.sess, x)

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        return list(output)

    def encode_response(self, output: np.ndarray) -> dict:
        return reply(output)


if __name__ == "__main__":
    api = FaceAPI(
        max_batch_size=int(os.environ.get("PEER_BATCH", "8")),
        batch_timeout=float(os.environ.get("PEER_WAIT_S", "0.002")),
        api_path="/predict",
    )
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=int(os.environ.get("PEER_WORKERS", "1")))
    server.run(port=int(os.environ["PEER_PORT"]), host="127.0.0.1", generate_client_file=False)
