"""facepipe on a real Ray Serve cluster (head + 2 worker nodes on this host, started with README's
"Scaling out" commands, ONE cluster for the module): replicas on different nodes answer every protocol
(seed HTTP and gRPC, tritonclient, facepipe's client); a face enrolled through one replica is identified
by another (PostgreSQL gallery); batches fill; backpressure answers 503 + Retry-After / UNAVAILABLE or
RESOURCE_EXHAUSTED; an admin load reaches every replica with no failed request under load; the
deployment scales up under load and back down; a worker node killed under load fails only requests in
flight on it, and facepipe's client retries absorb those."""

from __future__ import annotations

import base64
import collections
import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import ray
import tritonclient.grpc as triton
import yaml
from ray import serve

from bench.chaos import cmdline
from facepipe.client import Client
from facepipe.protos import pipeline_service_pb2 as seed_pb
from facepipe.protos import pipeline_service_pb2_grpc as seed_grpc
from tests.integration.conftest import add_version, free_port, private_repository
from tests.integration.ray_cluster import ROOT, Cluster, environment, readme_commands
from tests.integration.test_gallery_api import files
from tests.pg_server import PgServer

pytestmark = pytest.mark.slow
KEY = "ray-admin-key-0123456789"
ADMIN = {"x-api-key": KEY}
REPLICA = "x-facepipe-replica"
FACE = "Aaron_Sorkin/Aaron_Sorkin_0001.jpg"


def config(tmp: Path, http: int, rpc: int, store: str) -> dict[str, Any]:
    return {
        "http_port": http,
        "rpc_port": rpc,
        "log_dir": str(tmp / "logs"),
        "dag": {"tracer": {"interval_s": 0.5}},
        "op": {
            "ArcFace": {"is_thread_op": True, "concurrency": 1, "batch_size": 8, "auto_batching_timeout": 2}
        },
        "gallery": {"store": store},
        "auth": {"api_keys": [KEY]},
        "ray": {
            "autoscaling": {
                "min_replicas": 2,
                "max_replicas": 3,
                "target_ongoing_requests": 2,
                "upscale_delay_s": 1,
                "downscale_delay_s": 6,
            },
            "num_cpus": 1,
            "max_ongoing_requests": 8,
            "max_queued_requests": 16,
            "retry_after_s": 1,
            "metrics_interval_s": 1,
            "proxy_location": "HeadOnly",  # README: several nodes on one host share one proxy
        },
    }


@pytest.fixture(scope="module")
def cluster(
    models_dir: Path, postgres: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cluster, dict[str, Any], Path]]:
    tmp = tmp_path_factory.mktemp("ray")
    repo = private_repository(models_dir, tmp / "models")
    http, rpc, gcs = free_port(), free_port(), free_port()
    cfg = config(tmp, http, rpc, postgres.new_database())
    (tmp / "config.yml").write_text(yaml.safe_dump(cfg))
    c = Cluster(f"127.0.0.1:{gcs}", environment(str(ROOT / "src")), tmp / "commands.log")
    try:
        for written in readme_commands():
            if written.startswith("pip install"):
                continue  # installed already (make test installs the ray extra)
            line = written.replace("6379", str(gcs)).replace("9998", str(http))
            line = line.replace("--config config.yml", f"--config {tmp / 'config.yml'}")
            line = line.replace("--models models", f"--models {repo} --data {tmp / 'data'}")
            out = c.run(line)
            if line.startswith("ray start --head"):
                c.find_session()
            if line.startswith("curl"):
                assert json.loads(out)["ready"] is True
            if line.startswith("serve status"):
                assert "RUNNING" in out
        # README's mode: HAProxy answers the HTTP and gRPC ports in place of Serve's Python proxy
        assert any(cmdline(pid).split(" ", 1)[0].endswith("haproxy") for pid in c.processes()), c.log
        ray.init(address=c.gcs, logging_level="ERROR")
        yield c, cfg, repo
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.stop()


def url(cfg: dict[str, Any]) -> str:
    return f"http://127.0.0.1:{cfg['http_port']}"


def rpc(cfg: dict[str, Any]) -> str:
    return f"127.0.0.1:{cfg['rpc_port']}"


def seed_body(lfw_dir: Path) -> bytes:
    img = base64.b64encode((lfw_dir / "images" / FACE).read_bytes()).decode()
    return json.dumps({"key": ["image"], "value": [img]}).encode()


def node_of(response: httpx.Response) -> str:
    return response.headers[REPLICA].split("@")[1]


def replicas_running() -> int:
    app = serve.status().applications["facepipe"]
    return int(app.deployments["facepipe"].replica_states.get("RUNNING", 0))


def test_replicas_on_different_nodes_answer_every_protocol(cluster: Any, lfw_dir: Path) -> None:
    _, cfg, _ = cluster
    nodes = {node_of(httpx.get(url(cfg) + "/healthz")) for _ in range(20)}
    assert len(nodes) >= 2, nodes  # the replicas run on different worker nodes
    for path in ("/docs", "/openapi.json", "/ui", "/v2/models/ArcFace"):
        assert httpx.get(url(cfg) + path, follow_redirects=True).status_code == 200, path
    seed = httpx.post(url(cfg) + "/ArcFace/prediction", content=seed_body(lfw_dir), timeout=30).json()
    assert seed["err_no"] == 0 and seed["value"][0].startswith("array([[")  # the seed's HTTP client
    img = (lfw_dir / "images" / FACE).read_bytes()
    stub = seed_grpc.PipelineServiceStub(grpc.insecure_channel(rpc(cfg)))  # the seed's RPC client
    reply = stub.inference(seed_pb.Request(key=["image"], value=[base64.b64encode(img).decode()]))
    assert reply.err_no == 0 and reply.value[0].startswith("array([[")
    bad = stub.inference(seed_pb.Request(key=["image"], value=["not base64!"]))
    assert bad.err_no != 0 and "base64" in bad.err_msg  # the seed's error form, through Ray's proxy
    tc = triton.InferenceServerClient(rpc(cfg))
    assert tc.is_server_ready() and tc.is_model_ready("ArcFace")
    inp = triton.InferInput("image", [1], "BYTES")
    inp.set_data_from_numpy(np.array([img], dtype=object))
    emb = tc.infer("ArcFace", [inp]).as_numpy("embedding")
    assert emb.shape == (1, 192) and abs(float(np.linalg.norm(emb)) - 1) < 1e-3
    with Client(url(cfg), grpc=rpc(cfg)) as fc:  # facepipe.v1.Face over Ray's gRPC proxy
        assert len(fc.detect([img])[0].faces) == 1


def test_enrolled_through_one_replica_identified_through_another(cluster: Any, lfw_dir: Path) -> None:
    _, cfg, _ = cluster
    people = sorted(p for p in (lfw_dir / "images").iterdir() if len(list(p.glob("*.jpg"))) >= 2)[:3]
    with httpx.Client(base_url=url(cfg), headers=ADMIN, timeout=60) as c:
        for person in people:
            shots = sorted(person.glob("*.jpg"))
            sid = c.post("/v1/subjects", json={"name": person.name}).json()["id"]
            r = c.post(f"/v1/subjects/{sid}/faces", files=files(shots[0]))
            assert r.status_code == 201, r.text
            enrolled_on = node_of(r)
            other = None
            for _ in range(40):  # until another node's replica answers
                # a new connection each time: a proxy prefers the replicas on its own node
                r = httpx.post(url(cfg) + "/v1/identify", files=files(shots[1]), headers=ADMIN, timeout=60)
                if node_of(r) != enrolled_on:
                    other = r
                    break
            assert other is not None and other.status_code == 200, "no other replica answered"
            best = other.json()["results"][0]["faces"][0]["matches"][0]
            assert best["subject"] == sid and best["match"]


def ray_metrics(name: str) -> list[str]:
    """Every line of ``name`` exported by the nodes' Ray metrics agents."""
    lines = []
    for n in (n for n in ray.nodes() if n["Alive"]):
        with urllib.request.urlopen(f"http://127.0.0.1:{n['MetricsExportPort']}/metrics", timeout=10) as r:
            lines += [x for x in r.read().decode().splitlines() if x.startswith(name)]
    return lines


def test_batches_fill_under_concurrency_and_metrics_name_the_replica(cluster: Any, lfw_dir: Path) -> None:
    _, cfg, _ = cluster
    body = seed_body(lfw_dir)

    def one(_: int) -> int:
        return httpx.post(url(cfg) + "/ArcFace/prediction", content=body, timeout=60).json()["err_no"]

    with ThreadPoolExecutor(12) as pool:
        assert set(pool.map(one, range(96))) == {0}
    deadline, mean = time.monotonic() + 20, {}
    while time.monotonic() < deadline and not any(v > 1.5 for v in mean.values()):
        time.sleep(1)
        sums = ray_metrics("ray_facepipe_stage_batch_size_sum{")
        counts = ray_metrics("ray_facepipe_stage_batch_size_count{")

        def by_replica(lines: list[str]) -> dict[str, float]:
            out: dict[str, float] = collections.defaultdict(float)
            for x in (x for x in lines if 'stage="ArcFace"' in x):
                out[re.findall(r'replica="([^"]+)"', x)[0]] += float(x.rsplit(" ", 1)[1])
            return out

        s, n = by_replica(sums), by_replica(counts)
        mean = {r: s[r] / n[r] for r in s if n.get(r)}
    assert any(v > 1.5 for v in mean.values()), mean  # batches of more than one request formed


def test_backpressure_answers_each_protocol_overload_form(cluster: Any, lfw_dir: Path) -> None:
    _, cfg, _ = cluster
    body = seed_body(lfw_dir)
    with ThreadPoolExecutor(64) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.post(url(cfg) + "/ArcFace/prediction", content=body, timeout=60), range(128)
            )
        )
    rejected = [r for r in answers if r.status_code != 200]
    forms = collections.Counter((r.status_code, r.headers.get("retry-after"), r.text[:60]) for r in rejected)
    print("rejected HTTP:", forms)
    assert rejected, "128 requests at once past max_ongoing + max_queued: some must be turned away"
    assert all(r.status_code == 503 and r.headers.get("retry-after") == "1" for r in rejected)
    img = (lfw_dir / "images" / FACE).read_bytes()
    stub = seed_grpc.PipelineServiceStub(grpc.insecure_channel(rpc(cfg)))
    request = seed_pb.Request(key=["image"], value=[base64.b64encode(img).decode()])

    def call(_: int) -> str:
        try:
            stub.inference(request, timeout=60)
            return "OK"
        except grpc.RpcError as exc:
            return str(exc.code().name)

    with ThreadPoolExecutor(64) as pool:
        codes = collections.Counter(pool.map(call, range(128)))
    assert set(codes) <= {"OK", "UNAVAILABLE", "RESOURCE_EXHAUSTED"} and len(codes) > 1, codes


def under_load(work: Callable[[], Any], threads: int) -> tuple[collections.Counter[str], Callable[[], None]]:
    """Run ``work`` in a loop on ``threads`` threads; count outcomes; returns (counts, stop)."""
    counts: collections.Counter[str] = collections.Counter()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                counts[work()] += 1
            except Exception as exc:
                counts[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for t in pool:
        t.start()

    def end() -> None:
        stop.set()
        for t in pool:
            t.join()

    return counts, end


def test_admin_load_reaches_every_replica_with_no_failed_request(cluster: Any, lfw_dir: Path) -> None:
    _, cfg, repo = cluster
    body = seed_body(lfw_dir)
    seen: dict[str, str] = {}

    def seed() -> str:
        r = httpx.post(url(cfg) + "/ArcFace/prediction", content=body, timeout=60)
        seen[r.headers[REPLICA]] = r.headers.get("x-facepipe-variant", "")
        return "ok" if r.status_code == 200 and r.json()["err_no"] == 0 else f"{r.status_code}"

    counts, stop = under_load(seed, 2)
    try:
        time.sleep(1)
        add_version(repo, 2)
        r = httpx.post(url(cfg) + "/v2/repository/models/mobilefacenet/load", headers=ADMIN, timeout=120)
        assert r.status_code == 200 and r.json()["versions"] == {"2": "loaded", "1": "unloaded"}, r.text
        seen.clear()
        time.sleep(2)
    finally:
        stop()
    assert set(counts) == {"ok"} and counts["ok"] > 10, counts
    assert len(seen) >= 2 and set(seen.values()) == {"ArcFace/2"}, seen  # every replica serves v2


def test_autoscales_up_under_load_and_back_down(cluster: Any, lfw_dir: Path) -> None:
    _, cfg, _ = cluster
    body = seed_body(lfw_dir)
    counts, stop = under_load(
        lambda: str(httpx.post(url(cfg) + "/ArcFace/prediction", content=body, timeout=60).status_code), 8
    )
    try:
        deadline = time.monotonic() + 120  # a replica loads and self-tests every model first
        while replicas_running() < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert replicas_running() == 3, serve.status()
    finally:
        stop()
    deadline = time.monotonic() + 60
    while replicas_running() > 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert replicas_running() == 2
    assert counts["200"] > 0


def test_worker_node_killed_under_load(cluster: Any, lfw_dir: Path) -> None:
    """Raw HTTP requests may fail only while in flight on the dead node (at most one per thread, the
    one it had there); the same load through facepipe's client (HTTP and gRPC) fails none."""
    c, cfg, _ = cluster
    body, img = seed_body(lfw_dir), (lfw_dir / "images" / FACE).read_bytes()

    def raw() -> str:
        r = httpx.post(url(cfg) + "/ArcFace/prediction", content=body, timeout=60)
        return "ok" if r.status_code == 200 and r.json()["err_no"] == 0 else str(r.status_code)

    clients = [Client(url(cfg), retries=5), Client(url(cfg), grpc=rpc(cfg), retries=5)]
    raw_counts, stop_raw = under_load(raw, 3)
    by_client = [under_load(lambda fc=fc: "ok" if fc.embed([img])[0].faces else "none", 2) for fc in clients]
    try:
        time.sleep(2)
        victim = node_of(httpx.get(url(cfg) + "/healthz"))
        socket = next(n["RayletSocketName"] for n in ray.nodes() if n["NodeID"] == victim)
        c.kill_node(socket)
        before, deadline = raw_counts["ok"], time.monotonic() + 60
        while raw_counts["ok"] < before + 20 and time.monotonic() < deadline:
            time.sleep(0.5)  # Ray notices the node gone, the survivors take the load
        after = raw_counts["ok"]
    finally:
        stop_raw()
        for _, stop in by_client:
            stop()
        for fc in clients:
            fc.close()
    raw_failed = sum(n for k, n in raw_counts.items() if k != "ok")
    client_failed = sum(n for counts, _ in by_client for k, n in counts.items() if k != "ok")
    print(f"raw {dict(raw_counts)}; clients {[dict(cn) for cn, _ in by_client]}")
    assert after - before >= 20  # the load went on after the kill
    assert raw_failed <= 3 + 3, raw_counts  # in flight on the node: one per thread (x2 for the proxy)
    assert client_failed == 0, [dict(cn) for cn, _ in by_client]
