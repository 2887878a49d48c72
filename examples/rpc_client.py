"""The seed's RPC client, re-imagined: every image of a folder to the ``ArcFace`` service over the
Paddle Serving pipeline gRPC protocol (``PipelineService.inference``), several in flight at once.

    python examples/rpc_client.py FOLDER [--target 127.0.0.1:18091] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time
from pathlib import Path

import grpc
import numpy as np

from facepipe.protos import pipeline_service_pb2 as pb
from facepipe.protos import pipeline_service_pb2_grpc as pb_grpc


def parse(value: str) -> np.ndarray:
    """The seed's numpy-repr value: ``array([[...]], dtype=float32)``."""
    inner = value[value.index("[") : value.rindex("]") + 1].replace("[", " ").replace("]", " ")
    return np.array([float(v) for v in inner.replace(",", " ").split()], np.float32)


async def embed_folder(target: str, folder: Path, concurrency: int) -> dict[str, np.ndarray]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    sem = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.PipelineServiceStub(channel)

        async def one(i: int, path: Path) -> tuple[str, np.ndarray]:
            value = base64.b64encode(path.read_bytes()).decode()
            async with sem:
                reply = await stub.inference(pb.Request(key=["image"], value=[value], logid=i), timeout=30)
            if reply.err_no != 0:
                raise RuntimeError(f"{path.name}: err_no {reply.err_no}: {reply.err_msg}")
            return path.name, parse(reply.value[0])

        return dict(await asyncio.gather(*(one(i, p) for i, p in enumerate(files))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--target", default="127.0.0.1:18091")
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    t0 = time.perf_counter()
    embeddings = asyncio.run(embed_folder(args.target, args.folder, args.concurrency))
    took = time.perf_counter() - t0
    for name, emb in embeddings.items():
        print(f"{name}: {emb.shape[0]}-d, norm {np.linalg.norm(emb):.4f}")
    print(f"{len(embeddings)} images in {took:.2f} s ({len(embeddings) / took:.1f} images/s)")


if __name__ == "__main__":
    main()
