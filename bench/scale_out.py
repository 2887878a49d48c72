"""Scale-out: the same seed HTTP load against facepipe's ``worker_num`` layout and the Ray Serve
deployment at equal cores; the time to add a replica under load; the admin log's cost per call; and a
model for 10 and 100 nodes from those numbers. Writes bench/results/scale-out.{json,md}.

    python bench/scale_out.py            # the committed run (rounds of 20 s per layout)
    python bench/scale_out.py --quick    # 1 round of 6 s per layout, a smoke run

Layouts, each with 2 server processes of one ``ArcFace`` worker thread (batch up to 8):
- local: ``facepipe serve`` with ``worker_num: 2`` (SO_REUSEPORT, the kernel spreads connections);
- ray: one Ray node holding both replicas (``ray.replicas: 2``): on one host, the Ray layout with the
  same cores (a second node on the same host would add its raylet, agents and log monitor on those
  cores; the cluster tests run README's several nodes), with the environment README's "Scaling out"
  exports (Ray's high-throughput mode: HAProxy hands HTTP straight to the replicas);
- ray-proxy: the same cluster in Ray's default mode (Serve's Python proxy between client and replica),
  throughput rounds only.
Both run on this host; the load generator shares its cores with the servers (and, on a shared machine,
with whatever else runs: the load average is recorded with every round).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from bench.chaos import cmdline  # noqa: E402
from facepipe.server.ray_admin import FOLLOW_S  # noqa: E402
from facepipe.tools.loadgen import Level, closed_loop, encode_post, seed_ok  # noqa: E402
from tests.integration.conftest import free_port, launch, stop_server  # noqa: E402
from tests.integration.ray_cluster import Cluster, environment, exported, readme_commands  # noqa: E402

OBJECT_STORE = "100000000"
HIGH_THROUGHPUT = {  # the variables README's "Scaling out" exports before `ray start`
    k: v for line in readme_commands() if line.startswith("export ") for k, v in exported(line).items()
}


def base_config(tmp: Path, http: int, rpc: int) -> dict[str, Any]:
    op = {"is_thread_op": True, "concurrency": 1, "batch_size": 8, "auto_batching_timeout": 1}
    op["local_service_conf"] = {"thread_num": 1}
    return {
        "http_port": http,
        "rpc_port": rpc,
        "log_dir": str(tmp / "logs"),
        "op": {"ArcFace": op},
        "gallery": {"enabled": False},
        "ray": {
            "replicas": 2,
            "num_cpus": 1,
            "max_ongoing_requests": 64,
            "metrics_interval_s": 5,
            "proxy_location": "HeadOnly",  # nodes on one host: one proxy, or they fight for the port
        },
    }


GROUPS = (  # process group: what its command line holds (first match wins)
    ("replicas", ("ray::ServeReplica",)),
    ("Serve proxy", ("ray::ProxyActor",)),
    ("haproxy", ("haproxy",)),
    ("Ray daemons", ("raylet", "gcs_server", "ray::", "/ray/", "ray/_private", "ray/dashboard")),
    ("facepipe server", ("facepipe",)),
)


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far, by process group; the load generator is this process and its (reaped)
    children; "other" is the rest of the machine (kernel threads included)."""
    tick, me = os.sysconf("SC_CLK_TCK"), os.getpid()
    t = os.times()
    out = dict.fromkeys([g for g, _ in GROUPS] + ["other"], 0.0)
    out["load generator"] = t.user + t.system + t.children_user + t.children_system
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if pid == me or int(fields[1]) == me:
            continue  # counted by os.times once reaped
        cmd = cmdline(pid)
        group = next((g for g, marks in GROUPS if any(m in cmd for m in marks)), "other")
        out[group] += (int(fields[11]) + int(fields[12])) / tick
    cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    out["idle"] = (cpu[3] + cpu[4]) / tick  # idle + iowait, all cores
    out["steal"] = cpu[7] / tick  # taken by the hypervisor for other machines
    out["busy"] = (sum(cpu[:8]) - cpu[3] - cpu[4] - cpu[7]) / tick  # every core, interrupts included
    return out


def measure(url: str, body: bytes, concurrency: int, seconds: float) -> tuple[Level, float, dict]:
    """One round; with it the CPU milliseconds per request each process group spent."""
    closed_loop(url, [encode_post(url, body)], concurrency, 2, 2, seed_ok)  # warm-up
    before = cpu_seconds()
    level = closed_loop(url, [encode_post(url, body)], concurrency, seconds, 2, seed_ok)
    return level, os.getloadavg()[0], cpu_ms(before, cpu_seconds(), max(level.requests, 1))


def idle_cpu(seconds: float) -> dict[str, float]:
    """CPU milliseconds a second by process group while no request arrives: what a layout costs
    before it serves anything."""
    before = cpu_seconds()
    time.sleep(seconds)
    return cpu_ms(before, cpu_seconds(), seconds)


def cpu_ms(before: dict[str, float], after: dict[str, float], per: float) -> dict[str, float]:
    """CPU milliseconds by process group between two ``cpu_seconds``, divided by ``per``."""
    return {g: 1e3 * (after[g] - before.get(g, 0.0)) / per for g in after}


def local_rounds(
    models: Path, tmp: Path, body: bytes, args: argparse.Namespace
) -> tuple[list[dict], dict[str, float]]:
    http, rpc = free_port(), free_port()
    cfg = base_config(tmp / "local", http, rpc) | {"worker_num": 2}
    (tmp / "local").mkdir(parents=True, exist_ok=True)
    (tmp / "local" / "config.yml").write_text(yaml.safe_dump(cfg))
    run = launch(
        ["--config", str(tmp / "local" / "config.yml"), "--models", str(models)], tmp / "local", cfg, 120
    )
    try:
        url = f"http://127.0.0.1:{http}/ArcFace/prediction"
        rounds = [
            dict(asdict(lv), load=la, cpu_ms=cpu)
            for lv, la, cpu in (measure(url, body, args.c, args.seconds) for _ in range(args.rounds))
        ]
        return rounds, idle_cpu(args.idle)
    finally:
        stop_server(run)


def start_cluster(tmp: Path, mode: dict[str, str]) -> Cluster:
    gcs = free_port()
    base = environment(str(ROOT / "src"), fast_metrics=False)  # Ray's default metrics interval, as README
    env = {k: v for k, v in base.items() if k not in HIGH_THROUGHPUT} | mode
    c = Cluster(f"127.0.0.1:{gcs}", env, tmp / "commands.log")
    flags = f"--object-store-memory {OBJECT_STORE} --disable-usage-stats"
    # one node, both replicas and room for the one the bench adds
    c.run(f"ray start --head --port {gcs} --num-cpus 3 --include-dashboard false {flags}")
    c.find_session()
    return c


def replicas_running(app: str = "facepipe") -> int:
    from ray import serve

    status = serve.status().applications.get(app)
    return int(status.deployments["facepipe"].replica_states.get("RUNNING", 0)) if status else 0


def add_replica_under_load(spec: Any, url: str, body: bytes) -> float:
    """Seconds from the start of a load that wants a third replica (the autoscaler, 2 to 3, no upscale
    delay) until Ray reports it running: the autoscaler's decision plus the replica's start (models
    loaded and self-tested). Redeploying with ``ray.replicas: 3`` would replace every replica (the
    imperative API versions each deployment anew), which is not what a scale-up does."""
    from facepipe.server.ray_app import deploy

    auto = {"min_replicas": 2, "max_replicas": 3, "target_ongoing_requests": 2, "upscale_delay_s": 0}
    ray_cfg = spec.config.ray.model_validate(spec.config.ray.model_dump() | {"autoscaling": auto})
    spec.config = spec.config.model_copy(update={"ray": ray_cfg})
    deploy(spec, "auto")  # two replicas again, now under the autoscaler
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=60) as c:
            while not stop.is_set():
                c.post(url, content=body)

    threads = [threading.Thread(target=load) for _ in range(8)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    try:
        while replicas_running() < 3 and time.perf_counter() - t0 < 300:
            time.sleep(0.1)
        return time.perf_counter() - t0
    finally:
        stop.set()
        for t in threads:
            t.join()


def admin_log_cost(n: int = 2000) -> dict[str, float]:
    """Round trip of one ``since`` call to the admin log (a replica's call when it has news to report;
    idle, each replica holds one waiting ``follow`` call, renewed every ``FOLLOW_S``)."""
    import ray

    from facepipe.server.ray_admin import log_name

    log = ray.get_actor(log_name("facepipe"), namespace="facepipe")
    ray.get(log.since.remote("bench", 0))
    t0 = time.perf_counter()
    for _ in range(n):
        ray.get(log.since.remote("bench", 0))
    serial = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    ray.get([log.since.remote(f"bench{i % 400}", 0) for i in range(n)])
    return {"round_trip_ms": serial * 1e3, "calls_per_s": n / (time.perf_counter() - t0)}


def ray_rounds(
    models: Path, tmp: Path, body: bytes, args: argparse.Namespace, mode: dict[str, str], full: bool
) -> dict[str, Any]:
    """Throughput rounds on a fresh cluster started with ``mode``'s environment; ``full``: also the
    time to add a replica under load and the admin log's cost."""
    import ray

    from facepipe.config import parse_config
    from facepipe.server.ray_app import ReplicaSpec, deploy

    http, rpc = free_port(), free_port()
    where = tmp / ("ray" if mode else "ray-proxy")
    where.mkdir(parents=True, exist_ok=True)
    cfg = parse_config(base_config(where, http, rpc))
    c = start_cluster(where, mode)
    for k in HIGH_THROUGHPUT:
        os.environ.pop(k, None)
    os.environ.update({k: v for k, v in c.env.items() if k.startswith(("RAY_", "PYTHONPATH"))})
    try:
        ray.init(address=c.gcs, logging_level="ERROR")
        spec = ReplicaSpec(cfg, models.resolve(), (where / "data").resolve())
        t0 = time.perf_counter()
        deploy(spec, c.gcs)
        deploy_s = time.perf_counter() - t0
        url = f"http://127.0.0.1:{http}/ArcFace/prediction"
        rounds = [
            dict(asdict(lv), load=la, cpu_ms=cpu)
            for lv, la, cpu in (measure(url, body, args.c, args.seconds) for _ in range(args.rounds))
        ]
        out: dict[str, Any] = {"env": mode, "rounds": rounds, "deploy_s": deploy_s}
        out["idle"] = idle_cpu(args.idle)
        if full:
            out["add_replica_s"] = add_replica_under_load(spec, url, body)
            out["admin_log"] = admin_log_cost(200 if args.quick else 2000)
        return out
    finally:
        ray.shutdown()
        c.stop()


def median(rounds: list[dict], key: str) -> float:
    return float(np.median([r[key] for r in rounds]))


def model(local: list[dict], ray_res: dict[str, Any]) -> dict[str, Any]:
    """10 and 100 nodes, from the measured numbers (see the md for the reasoning)."""
    per_node = median(ray_res["rounds"], "qps")  # one node of 2 replicas here
    log = ray_res["admin_log"]
    out = {}
    for nodes in (10, 100):
        replicas = 2 * nodes
        polls = replicas / FOLLOW_S  # idle: each replica renews its waiting call every FOLLOW_S
        out[str(nodes)] = {
            "qps_if_linear": per_node * nodes,
            "admin_log_load": polls / log["calls_per_s"],  # fraction of the log actor's capacity
            "admin_call_reaches_all_s": median(ray_res["rounds"], "p50_ms") / 1e3,  # the append wakes all
        }
    return out


LAYOUT = "one Ray node, README's environment"  # runs of another layout are not pooled with these


def summary(res: dict[str, Any]) -> dict[str, Any]:
    """What the runs table keeps of one run: its rounds' QPS and the CPU a request, by layout."""

    def cpu(rounds: list[dict], group: str) -> float:
        return sum(r["cpu_ms"][group] for r in rounds) / len(rounds)

    loc, ray_r, proxy_r = res["local"], res["ray"]["rounds"], res["ray_proxy"]["rounds"]
    return {
        "when": res["when"],
        "host": res["host"],
        "layout": LAYOUT,
        "local_qps": [r["qps"] for r in loc],
        "ray_qps": [r["qps"] for r in ray_r],
        "proxy_qps": [r["qps"] for r in proxy_r],
        "local_server_cpu_ms": cpu(loc, "facepipe server"),
        "replicas_cpu_ms": cpu(ray_r, "replicas"),
        "daemons_cpu_ms": cpu(ray_r, "Ray daemons"),
    }


def runs_table(runs: list[dict[str, Any]]) -> list[str]:
    """Every recorded run of this layout, and the ratio of all their rounds pooled."""
    med = np.median
    lines = [
        "## Runs (run-to-run spread; `bench/results/scale-out-runs.json`)",
        "",
        "| run (UTC) | local QPS | Ray HAProxy QPS | ratio | Serve proxy ratio | CPU ms a request: local "
        "server / replicas / Ray daemons |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        lo, hi = med(r["local_qps"]), med(r["ray_qps"])
        lines.append(
            f"| {r['when']} | {lo:.0f} | {hi:.0f} | {hi / lo:.0%} | {med(r['proxy_qps']) / lo:.0%} | "
            f"{r['local_server_cpu_ms']:.2f} / {r['replicas_cpu_ms']:.2f} / {r['daemons_cpu_ms']:.2f} |"
        )
    pooled = {k: med([q for r in runs for q in r[k]]) for k in ("local_qps", "ray_qps")}
    lines += [
        "",
        f"All {len(runs)} runs' rounds pooled: local {pooled['local_qps']:.0f}, Ray {pooled['ray_qps']:.0f} "
        f"requests/s: **{pooled['ray_qps'] / pooled['local_qps']:.0%}** (target >= 85 %).",
    ]
    return lines


def report(res: dict[str, Any], path: Path, runs: list[dict[str, Any]]) -> None:
    loc, ray_r, proxy_r = res["local"], res["ray"]["rounds"], res["ray_proxy"]["rounds"]
    ratio = median(ray_r, "qps") / median(loc, "qps")
    proxy_ratio = median(proxy_r, "qps") / median(loc, "qps")
    lines = [
        "# Scale-out: worker_num vs Ray Serve at equal cores",
        "",
        f"`python bench/scale_out.py{' --quick' if res['quick'] else ''}` on {res['host']}, "
        f"{res['cpus']} CPUs, "
        f"closed loop c={res['concurrency']}, seed HTTP (one aligned face), {res['seconds']} s per round.",
        "",
        "| layout | round | QPS | p50 ms | p99 ms | errors | load avg |",
        "|---|---|---|---|---|---|---|",
    ]
    layouts = (
        ("local worker_num=2", loc),
        ("ray 2 replicas, HAProxy", ray_r),
        ("ray 2 replicas, Serve proxy", proxy_r),
    )
    for name, rounds in layouts:
        for i, r in enumerate(rounds):
            lines.append(
                f"| {name} | {i + 1} | {r['qps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{sum(r['errors'].values())} | {r['load']:.1f} |"
            )
    groups = ["load generator", *(g for g, _ in GROUPS), "other"]
    lines += [
        "",
        "CPU milliseconds per request by process group (mean of the rounds; 2 cores = "
        f"{2e3 / median(loc, 'qps'):.1f} ms a request at the local median QPS):",
        "",
        "| layout | " + " | ".join(groups) + " | processes | all cores busy | idle | stolen |",
        "|---|" + "---|" * (len(groups) + 4),
    ]
    for name, rounds in layouts:
        keys = [*groups, "busy", "idle", "steal"]
        cpu = {g: sum(r["cpu_ms"][g] for r in rounds) / len(rounds) for g in keys}
        cells = " | ".join(f"{cpu[g]:.2f}" for g in groups)
        total = sum(cpu[g] for g in groups)
        lines.append(
            f"| {name} | {cells} | {total:.2f} | {cpu['busy']:.2f} | {cpu['idle']:.2f} | {cpu['steal']:.2f} |"
        )
    lines += [
        "",
        "The same with no request arriving (after the rounds), CPU milliseconds a second: what a layout "
        "costs before it serves anything (2 cores = 2000):",
        "",
        "| layout | " + " | ".join(groups) + " | processes |",
        "|---|" + "---|" * (len(groups) + 1),
    ]
    idles = (res["local_idle"], res["ray"]["idle"], res["ray_proxy"]["idle"])
    for (name, _), idle in zip(layouts, idles, strict=True):
        cells = " | ".join(f"{idle[g]:.0f}" for g in groups)
        lines.append(f"| {name} | {cells} | {sum(idle[g] for g in groups):.0f} |")
    d50 = median(ray_r, "p50_ms") - median(loc, "p50_ms")
    d99 = median(ray_r, "p99_ms") - median(loc, "p99_ms")
    lines += [
        "",
        f"Ray (HAProxy, README's mode) / local throughput (medians): **{ratio:.0%}** (target >= 85 %); "
        f"overhead per request p50 {d50:+.1f} ms, p99 {d99:+.1f} ms. Ray's default mode (its Python "
        f"proxy): {proxy_ratio:.0%}.",
        f"Deploy (2 replicas, models loaded and self-tested): {res['ray']['deploy_s']:.1f} s; "
        f"a third replica under load (autoscaler 2 -> 3, upscale_delay_s 0): running "
        f"**{res['ray']['add_replica_s']:.1f} s** after the load started.",
        f"Admin log: {res['ray']['admin_log']['round_trip_ms']:.2f} ms a call, "
        f"{res['ray']['admin_log']['calls_per_s']:.0f} calls/s from one driver.",
        "",
        "## 10 and 100 nodes (2 replicas each), from these numbers",
        "",
        "| nodes | QPS if linear | admin log renewals / its capacity | admin call on every replica |",
        "|---|---|---|---|",
    ]
    for nodes, m in res["model"].items():
        reach = m["admin_call_reaches_all_s"]
        lines.append(f"| {nodes} | {m['qps_if_linear']:.0f} | {m['admin_log_load']:.0%} | ~{reach:.2f} s |")
    loads = {k: max(r["load"] for r in rounds) for k, rounds in (("lo", loc), ("hi", ray_r), ("px", proxy_r))}
    lines += ["", *runs_table(runs), "", NOTES.format(**loads)]
    path.write_text("\n".join(lines) + "\n")


NOTES = """Reading the model: requests never cross replicas (each replica runs the whole DAG), so the
data path scales with replicas as long as the proxies keep up; every node runs its own proxy, so
clients spread over nodes (a load balancer in front of the nodes' HTTP ports, or DNS) add proxy
capacity with the nodes. What grows with the cluster is shared: the admin log (one actor on the head)
holds one waiting call per replica, renewed every 2 s when idle and answered at once when an admin
call is appended (the table's third column: the renewals against the calls a second it answers here,
far from its limit at 100 nodes; an admin call reaches every replica about as fast as one request);
Ray's controller and GCS are single processes on the head whose limits Ray documents, not measured
here. A replica added under
load takes the time in the table (models loaded and self-tested) before it takes traffic, so
autoscaling should act on a trend, not a spike.

Where the rest goes (the CPU table; load average up to {lo:.1f} local, {hi:.1f} HAProxy, {px:.1f} Serve
proxy). Every layout keeps both cores busy (idle ~0), so throughput follows CPU per request. In Ray's
default mode Serve's proxy, a Python process per node that parses HTTP and passes each request to a
replica over Ray's RPC, costs about as much CPU as the replica, and the replica's own share grows too;
a plain Ray Serve app of the same model tops out at the same 84-90 requests/s here
(bench/peers/ray_srv.py, peers-cpu.md). In the README's mode HAProxy (C) forwards the connection to an
HTTP server Ray runs inside the replica ("direct ingress"): the proxy column nearly vanishes. What is
left: Ray's request path inside the replica (the replicas column over the local server's) and Ray's
daemons (raylet, GCS, controller, agents). The idle table shows most of it is a fixed cost per node:
with no request arriving, Ray's processes use about a quarter of a core (~250 CPU ms a second: the
Serve controller's control loop, GCS, agents, log monitor, a proxy actor kept beside HAProxy, and each
Ray worker process's own threads, the replicas' included) against ~25 ms for the local server: an
eighth of this 2-core host before a request arrives, under 2 % of a 16-core node. The runs table
pools every run of this layout; the ratio moves with the machine's load (the stolen column is CPU
time the hypervisor gave another tenant).

The Ray layouts here are one node (the same cores as the local server); the cluster tests run
README's head and worker nodes on this host, where every extra node adds its own raylet, agents and
log monitor (~45 CPU ms a second, idle) and, with a proxy on every node, a HAProxy on the same port
that Ray restarts without end (`ray.proxy_location: HeadOnly` avoids that: earlier runs with it off
reached 52-54 %, with a head and a worker node 77 %)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round of 6 s per layout")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-c", type=int, default=16, help="concurrent connections")
    ap.add_argument("--idle", type=float, default=10, help="seconds without requests, CPU measured")
    ap.add_argument("--models", type=Path, default=Path(os.environ.get("FACEPIPE_MODELS", ROOT / "models")))
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("FACEPIPE_TEST_DATA", ROOT / "data")))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.idle = 6.0, 1, 2.0
    face = sorted((args.data / "lfw-dev" / "images").glob("*/*.jpg"))[0]
    body = json.dumps({"key": ["image"], "value": [base64.b64encode(face.read_bytes()).decode()]}).encode()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="scale-out-") as d:
        tmp = Path(d)
        local, local_idle = local_rounds(args.models, tmp, body, args)
        ray_res = ray_rounds(args.models, tmp, body, args, HIGH_THROUGHPUT, True)
        proxy_res = ray_rounds(args.models, tmp, body, args, {}, False)
    res = {
        "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "quick": args.quick,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "concurrency": args.c,
        "seconds": args.seconds,
        "local": local,
        "local_idle": local_idle,
        "ray": ray_res,
        "ray_proxy": proxy_res,
        "model": model(local, ray_res),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale-out.json").write_text(json.dumps(res, indent=1))
    history = args.out / "scale-out-runs.json"
    runs = [r for r in json.loads(history.read_text()) if r["layout"] == LAYOUT] if history.exists() else []
    if not args.quick:  # a smoke run is not a measurement
        runs.append(summary(res))
        history.write_text(json.dumps(runs, indent=1))
    report(res, args.out / "scale-out.md", runs or [summary(res)])
    print((args.out / "scale-out.md").read_text())


if __name__ == "__main__":
    main()
