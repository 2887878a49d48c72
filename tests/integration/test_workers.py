"""worker_num: several server processes on one port, one gallery, a clean stop."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx

from tests.integration.conftest import start_server, stop_server
from tests.integration.test_gallery_api import AUTH, R, W, files, people


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


def test_two_workers_share_the_port_and_the_gallery(models_dir: Path, lfw_dir: Path, tmp_path: Path) -> None:
    run = start_server(models_dir, tmp_path, {**AUTH, "worker_num": 2})
    try:
        assert len(children(run.proc.pid)) == 2
        img = base64.b64encode(sorted((lfw_dir / "images").glob("*/*.jpg"))[0].read_bytes()).decode()
        with httpx.Client(base_url=run.url, timeout=60) as c:  # one connection: one worker answers
            for _ in range(4):
                r = c.post("/ArcFace/prediction", json={"key": ["image"], "value": [img]})
                assert r.json()["err_no"] == 0
        who = people(lfw_dir, 3, 2)
        for name, paths in who.items():
            httpx.post(run.url + "/v1/subjects", json={"id": name, "name": name}, headers=W, timeout=30)
            httpx.post(f"{run.url}/v1/subjects/{name}/faces", files=files(paths[0]), headers=W, timeout=60)
        for _ in range(4):  # new connections: both workers, each must know every enrolment
            for name, paths in who.items():
                r = httpx.post(run.url + "/v1/identify", files=files(paths[1]), headers=R, timeout=60)
                assert r.json()["results"][0]["faces"][0]["matches"][0]["subject"] == name
    finally:
        assert stop_server(run) == 0
