"""Peer (a): a plain FastAPI + onnxruntime service, one session shared by the threadpool (onnxruntime
sessions are thread-safe and release the GIL). Tuned: sync endpoint, session threads from PEER_THREADS."""

from __future__ import annotations

import os

import uvicorn
from common import embed, pixels, reply, session
from fastapi import FastAPI, Request

app = FastAPI()
SESSION = session(int(os.environ.get("PEER_THREADS", "1")))


@app.post("/predict")
def predict(doc: dict) -> dict:
    return reply(embed(SESSION, pixels(doc)[None])[0])


@app.get("/health")
def health(_: Request) -> dict:
    return {"ok": True}


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ["PEER_PORT"]), log_level="warning", access_log=False
    )
