"""The seed's HTTP client, re-imagined: every image of a folder to the ``ArcFace`` service over the
Paddle Serving pipeline protocol, several in flight at once, with the embedding of each.

    python examples/http_client.py FOLDER [--url http://127.0.0.1:9998] [--concurrency 8]

Each image should be an aligned face crop (the service only resizes to 112x112, as the seed did);
for photos use /v1/embed (examples/identify_demo.py shows the face API).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time
from pathlib import Path

import httpx
import numpy as np


async def embed_folder(url: str, folder: Path, concurrency: int) -> dict[str, np.ndarray]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(i: int, path: Path) -> tuple[str, np.ndarray]:
            body = {"key": ["image"], "value": [base64.b64encode(path.read_bytes()).decode()], "logid": i}
            async with sem:
                r = await client.post("/ArcFace/prediction", json=body, params={"format": "json"})
            doc = r.json()
            if doc["err_no"] != 0:
                raise RuntimeError(f"{path.name}: err_no {doc['err_no']}: {doc['err_msg']}")
            return path.name, np.asarray(doc["value"][0], np.float32).ravel()

        return dict(await asyncio.gather(*(one(i, p) for i, p in enumerate(files))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--url", default="http://127.0.0.1:9998")
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    t0 = time.perf_counter()
    embeddings = asyncio.run(embed_folder(args.url, args.folder, args.concurrency))
    took = time.perf_counter() - t0
    for name, emb in embeddings.items():
        print(f"{name}: {emb.shape[0]}-d, first values {np.round(emb[:4], 4).tolist()}")
    print(f"{len(embeddings)} images in {took:.2f} s ({len(embeddings) / took:.1f} images/s)")


if __name__ == "__main__":
    main()
