"""Peer (c): Ray Serve with @serve.batch (max_batch_size, batch_wait_timeout_s from the environment)."""

from __future__ import annotations

import os
import time

import numpy as np
import ray
from common import embed, pixels, reply, session
from ray import serve
from starlette.requests import Request

BATCH = int(os.environ.get("PEER_BATCH", "8"))
WAIT_S = float(os.environ.get("PEER_WAIT_S", "0.002"))


@serve.deployment(num_replicas=int(os.environ.get("PEER_WORKERS", "1")), max_ongoing_requests=256)
class Face:
    def __init__(self) -> None:
        self.sess = session(int(os.environ.get("PEER_THREADS", "1")))

    @serve.batch(max_batch_size=BATCH, batch_wait_timeout_s=WAIT_S)
    async def run(self, xs: list[np.ndarray]) -> list[dict]:
        return [reply(e) for e in embed(self.sess, np.stack(xs))]

    async def __call__(self, request: Request) -> dict:
        return await self.run(pixels(await request.json()))


if __name__ == "__main__":
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": int(os.environ["PEER_PORT"])})
    serve.run(Face.bind(), route_prefix="/predict")
    while True:
        time.sleep(3600)
