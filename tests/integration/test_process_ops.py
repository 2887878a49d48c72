"""``dag.is_thread_op: false`` (the seed's process ops): the real server with every op worker in a
child process gives the same answers as the thread server, and a bad image still fails alone."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import numpy as np

from tests.integration.conftest import Running, seed_embedding, start_server, stop_server


def test_process_ops_answer_like_thread_ops(
    server: Running, models_dir: Path, lfw_dir: Path, tmp_path: Path
) -> None:
    run = start_server(models_dir, tmp_path, {"dag": {"is_thread_op": False}}, ready_s=180)
    try:
        paths = sorted((lfw_dir / "images").glob("*/*.jpg"))[:3]
        for path in paths:
            img = base64.b64encode(path.read_bytes()).decode()
            assert np.abs(seed_embedding(run.url, img) - seed_embedding(server.url, img)).max() <= 1e-4
        photo = paths[0].read_bytes()
        got = [
            httpx.post(
                url + "/v1/embed?max_faces=1",
                content=photo,
                headers={"content-type": "image/jpeg"},
                timeout=60,
            )
            for url in (run.url, server.url)
        ]
        a, b = (np.asarray(r.json()["results"][0]["faces"][0]["embedding"]) for r in got)
        assert np.abs(a - b).max() <= 1e-4
        qa, qb = (r.json()["results"][0]["faces"][0]["quality"]["score"] for r in got)
        assert abs(qa - qb) <= 1e-3  # the quality branch runs in a child process too
        bad = httpx.post(
            run.url + "/ArcFace/prediction", json={"key": ["image"], "value": ["bm90IGFuIGltYWdl"]}
        )
        assert bad.status_code == 200 and bad.json()["err_no"] != 0
        assert seed_embedding(run.url, base64.b64encode(photo).decode()).shape == (192,)  # still serving
    finally:
        stop_server(run)
