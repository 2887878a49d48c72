"""Model management against a real server: versions loaded online (API and polling), a broken
version rejected, an A/B split with sticky users, and swaps under load without a failed request."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import tritonclient.grpc
from tritonclient.utils import InferenceServerException
from typer.testing import CliRunner

from facepipe.cli import app
from facepipe.tools.loadgen import encode_post, open_loop, seed_ok
from tests.integration.conftest import add_version, private_repository, start_server, stop_server

KEY = "admin-key-0123456789"
ADMIN = {"x-api-key": KEY}


def face(lfw_dir: Path) -> str:
    return base64.b64encode(sorted((lfw_dir / "images").glob("*/*.jpg"))[0].read_bytes()).decode()


def seed(url: str, img: str, headers: dict | None = None) -> tuple[int, str]:
    r = httpx.post(
        url + "/ArcFace/prediction", json={"key": ["image"], "value": [img]}, headers=headers, timeout=30
    )
    return r.json()["err_no"], r.headers.get("x-facepipe-variant", "")


def index(url: str) -> dict[tuple[str, str], dict]:
    rows = httpx.post(url + "/v2/repository/index", timeout=10).json()
    return {(r["name"], r["version"]): r for r in rows}


def test_load_swap_reject_and_unload(models_dir: Path, lfw_dir: Path, tmp_path: Path) -> None:
    repo = private_repository(models_dir, tmp_path / "models")
    run = start_server(repo, tmp_path, {"auth": {"api_keys": [KEY]}})
    img = face(lfw_dir)
    try:
        assert seed(run.url, img) == (0, "ArcFace/1")
        load = run.url + "/v2/repository/models/mobilefacenet/load"
        assert httpx.post(load, timeout=30).status_code == 401
        add_version(repo, 2)
        r = httpx.post(load, headers=ADMIN, timeout=60)
        assert r.status_code == 200 and r.json()["versions"] == {"2": "loaded", "1": "unloaded"}
        assert seed(run.url, img) == (0, "ArcFace/2")
        meta = httpx.get(run.url + "/v2/models/mobilefacenet", timeout=10).json()
        assert meta["versions"] == ["2"]
        add_version(repo, 3, broken=True)
        r = httpx.post(load, headers=ADMIN, timeout=60)
        assert r.status_code == 400 and "self-test" in r.json()["error"]
        row = index(run.url)[("mobilefacenet", "3")]
        assert row["state"] == "UNAVAILABLE" and "rejected" in row["reason"]
        assert seed(run.url, img) == (0, "ArcFace/2")  # the old version kept serving
        listed = CliRunner().invoke(app, ["models", "list", "--url", run.url])
        assert listed.exit_code == 0 and "rejected: self-test" in listed.stdout
        assert "precision" in listed.stdout and ("bf16" in listed.stdout or "fp32" in listed.stdout)
        r = httpx.post(run.url + "/v2/repository/models/ArcFace/unload", json={"version": 2}, headers=ADMIN)
        assert r.json()["unloaded"] == ["2"]
        assert seed(run.url, img)[0] == 3002  # nothing loaded: refused clearly
        r = httpx.post(load, json={"parameters": {"version": "1"}}, headers=ADMIN, timeout=60)
        assert r.json()["versions"]["1"] == "loaded" and seed(run.url, img) == (0, "ArcFace/1")
        grpc_client = tritonclient.grpc.InferenceServerClient(run.grpc)
        with pytest.raises(InferenceServerException, match="API key"):
            grpc_client.unload_model("mobilefacenet")
        grpc_client.unload_model("mobilefacenet", headers=ADMIN)
        assert seed(run.url, img)[0] == 3002
        grpc_client.load_model("mobilefacenet", headers=ADMIN)  # the newest usable version: 2
        assert seed(run.url, img) == (0, "ArcFace/2")
    finally:
        stop_server(run)


def test_ab_split_sticky_users_and_polling(models_dir: Path, lfw_dir: Path, tmp_path: Path) -> None:
    repo = private_repository(models_dir, tmp_path / "models")
    add_version(repo, 2)
    extra = {
        "auth": {"api_keys": [KEY]},
        "models": {"mobilefacenet": {"version_policy": {"all": True}, "weights": {"1": 80, "2": 20}}},
        "model_control": {"poll_interval_s": 0.5, "sticky_header": "x-user"},
    }
    run = start_server(repo, tmp_path, extra)
    img = face(lfw_dir)
    try:
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda _: seed(run.url, img), range(400)))
        counts = Counter(v for _, v in got)
        assert {e for e, _ in got} == {0} and abs(counts["ArcFace/2"] / 400 - 0.2) < 0.07
        assert len({seed(run.url, img, {"x-user": "ann"})[1] for _ in range(20)}) == 1
        r = httpx.post(
            run.url + "/v2/repository/models/ArcFace/weights", json={"weights": {"2": 1}}, headers=ADMIN
        )
        assert r.status_code == 200 and seed(run.url, img)[1] == "ArcFace/2"
        metrics = httpx.get(run.url + "/metrics", timeout=10).text
        assert 'facepipe_variant_requests_total{model="ArcFace",version="2"}' in metrics
        add_version(repo, 3)  # picked up by the poll
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and index(run.url)[("mobilefacenet", "3")]["state"] != "READY":
            time.sleep(0.3)
        assert index(run.url)[("mobilefacenet", "3")]["state"] == "READY"
        tracer = run.log_dir / "pipeline.tracer"
        time.sleep(1.2)
        assert "DAGExecutor(ArcFace@3)" in tracer.read_text()
    finally:
        stop_server(run)


def test_swaps_under_load_fail_no_request(models_dir: Path, lfw_dir: Path, tmp_path: Path) -> None:
    repo = private_repository(models_dir, tmp_path / "models")
    run = start_server(repo, tmp_path, {"auth": {"api_keys": [KEY]}})
    body = json.dumps({"key": ["image"], "value": [face(lfw_dir)]}).encode()
    url = run.url + "/ArcFace/prediction"
    result = {}
    load = threading.Thread(
        target=lambda: result.update(level=open_loop(url, [encode_post(url, body)], 40, 10, 1, seed_ok))
    )
    try:
        load.start()
        for version, broken in ((2, False), (3, True), (4, False)):
            time.sleep(2)
            add_version(repo, version, broken)
            httpx.post(run.url + "/v2/repository/models/mobilefacenet/load", headers=ADMIN, timeout=60)
        load.join()
        level = result["level"]
        assert level.requests >= 300 and level.errors == {}
        assert seed(run.url, face(lfw_dir))[1] == "ArcFace/4"
    finally:
        stop_server(run)
