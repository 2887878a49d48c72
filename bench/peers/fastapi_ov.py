"""Peer (d): FastAPI on OpenVINO, written the way OpenVINO's docs recommend for a server: the model
compiled with the THROUGHPUT hint, an AsyncInferQueue of the plugin's optimal number of infer requests,
and each request's coroutine awaiting its callback (a semaphore of the queue's size keeps start_async
from ever blocking the event loop). JPEG decode runs in the threadpool. Tuned: PEER_STREAMS (0 = the
hint's choice), PEER_PRECISION (bf16 / f32, as facepipe's)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import numpy as np
import openvino as ov
import uvicorn
from common import openvino_model, pixels, reply, unit
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

app = FastAPI()
COMPILED = openvino_model("THROUGHPUT", streams=int(os.environ.get("PEER_STREAMS", "0")))
QUEUE = ov.AsyncInferQueue(COMPILED, 0)  # 0: OPTIMAL_NUMBER_OF_INFER_REQUESTS
SLOTS = asyncio.Semaphore(len(QUEUE))  # binds no loop until first used (Python >= 3.10)


def _done(request: ov.InferRequest, userdata: tuple[asyncio.AbstractEventLoop, asyncio.Future]) -> None:
    loop, fut = userdata
    loop.call_soon_threadsafe(fut.set_result, request.get_output_tensor(0).data.copy())


QUEUE.set_callback(_done)


@app.post("/predict")
async def predict(doc: dict) -> dict:
    batch = (await run_in_threadpool(pixels, doc))[None]
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    async with SLOTS:
        QUEUE.start_async({0: batch}, (loop, fut))
        out = await fut
    return reply(unit(np.asarray(out))[0])


@app.get("/health")
def health() -> dict:
    return {"ok": True, "infer_requests": len(QUEUE)}


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ["PEER_PORT"]), log_level="warning", access_log=False
    )
