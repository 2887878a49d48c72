"""The side-by-side race on this machine: facepipe against a plain FastAPI + onnxruntime service,
LitServe, Ray Serve, FastAPI on OpenVINO (async infer requests) over the seed's JSON, and Triton's
server (nvidia-pytriton, dynamic batcher) over KServe v2 binary against facepipe's own /v2 route; the
same MobileFaceNet ONNX, the same 700 real LFW images and the same load generator
(facepipe.tools.loadgen). The OpenVINO peers run at facepipe's precision (read from its model metadata).
Writes bench/results/peers-cpu.{json,md,png}.

    python -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install -r bench/peers/requirements.txt
    .venv/bin/python bench/peers/run.py --peers-python /tmp/peers-venv/bin/python [--only a,b]

Each peer is tuned on its own knobs first (a short run at concurrency 16 per setting; the best is kept),
then swept: closed loop at concurrency 1..32, and open loop at fixed rates for p99 at equal load.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from facepipe.tools import plots  # noqa: E402
from facepipe.tools.loadgen import closed_loop, encode_post, http_ok, open_loop, seed_ok  # noqa: E402
from tests.integration.conftest import free_port, start_server, stop_server  # noqa: E402

HERE = Path(__file__).resolve().parent
# name: (script, settings tried, protocol)
PEERS = {
    "fastapi-ort": ("fastapi_ort.py", [{"PEER_THREADS": "1"}, {"PEER_THREADS": "2"}], "seed"),
    "litserve": (
        "litserve_srv.py",
        [{"PEER_WORKERS": "1", "PEER_BATCH": "8"}, {"PEER_WORKERS": "2", "PEER_BATCH": "8"}],
        "seed",
    ),
    "ray-serve": (
        "ray_srv.py",
        [{"PEER_WORKERS": "1", "PEER_BATCH": "8"}, {"PEER_WORKERS": "2", "PEER_BATCH": "8"}],
        "seed",
    ),
    "fastapi-openvino": (
        "fastapi_ov.py",
        [{"PEER_STREAMS": "0"}, {"PEER_STREAMS": "1"}, {"PEER_STREAMS": "2"}],
        "seed",
    ),
    "triton": (
        "triton_srv.py",
        [
            {"PEER_INSTANCES": "1", "PEER_THREADS": "2", "PEER_BATCH": "16", "PEER_DELAY_US": "2000"},
            {"PEER_INSTANCES": "2", "PEER_THREADS": "1", "PEER_BATCH": "16", "PEER_DELAY_US": "2000"},
            {"PEER_INSTANCES": "2", "PEER_THREADS": "1", "PEER_BATCH": "8", "PEER_DELAY_US": "500"},
        ],
        "kserve",
    ),
}
LEVELS, RATES = (1, 4, 8, 16, 32), (40, 80, 120)
# facepipe as shipped (OpenVINO) over the seed's JSON and over KServe v2 binary, and on onnxruntime
# like the first peers, so the runtime's share is visible: name -> (engine, protocol)
FACEPIPE = {
    "facepipe": ("auto", "seed"),
    "facepipe-ort": ("onnxruntime", "seed"),
    "facepipe-kserve": ("auto", "kserve"),
}
PATHS = {"seed": "/predict", "kserve": "/v2/models/ArcFace/infer"}
OK = {"seed": seed_ok, "kserve": http_ok}


def kserve_body(jpeg: bytes, shape: list[int]) -> tuple[bytes, dict[str, str]]:
    """One image as a KServe v2 binary-extension request (BYTES, length-prefixed)."""
    raw = struct.pack("<I", len(jpeg)) + jpeg
    tensor = {
        "name": "image",
        "shape": shape,
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(raw)},
    }
    head = json.dumps({"inputs": [tensor]}).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head))}


def requests_for(url: str, protocol: str, jpegs: list[bytes], batched: bool) -> list[bytes]:
    """The load's encoded requests; Triton's model has a batch dimension ([1, 1]), facepipe's not ([1])."""
    if protocol == "seed":
        docs = [{"key": ["image"], "value": [base64.b64encode(j).decode()]} for j in jpegs]
        return [encode_post(url, json.dumps(d).encode()) for d in docs]
    bodies = [kserve_body(j, [1, 1] if batched else [1]) for j in jpegs]
    return [encode_post(url, b, "application/octet-stream", h) for b, h in bodies]


def measure(url: str, reqs: list[bytes], protocol: str, seconds: float) -> dict:
    ok = OK[protocol]
    closed_loop(url, reqs, 4, 2.0, ok=ok)  # warm-up
    closed = [asdict(closed_loop(url, reqs, c, seconds, ok=ok)) for c in LEVELS]
    rated = [asdict(open_loop(url, reqs, r, seconds, ok=ok)) for r in RATES]
    return {"closed": closed, "open": rated}


def ready(url: str, protocol: str, jpeg: bytes) -> bool:
    if protocol == "seed":
        doc = {"key": ["image"], "value": [base64.b64encode(jpeg).decode()]}
        body, headers = json.dumps(doc).encode(), {"content-type": "application/json"}
    else:
        body, headers = kserve_body(jpeg, [1, 1])
        headers["content-type"] = "application/octet-stream"
    try:
        return httpx.post(url, content=body, headers=headers, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def start_peer(
    python: str, script: str, env: dict, protocol: str, jpeg: bytes, attempts: int = 3
) -> tuple[subprocess.Popen, str]:
    """A peer answering its first request. A start that dies is tried again (``attempts`` in all):
    pytriton's model stub gives its handshake with the Python process one second, which a loaded
    2-core machine sometimes misses."""
    for attempt in range(1, attempts + 1):
        try:
            return _start_once(python, script, env, protocol, jpeg)
        except RuntimeError as exc:
            if attempt == attempts:
                raise
            print(f"{script}: start {attempt} failed ({str(exc)[-200:]}); again", flush=True)
    raise AssertionError("unreachable")


def _start_once(
    python: str, script: str, env: dict, protocol: str, jpeg: bytes
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    full = {
        **os.environ,
        **env,
        "PEER_PORT": str(port),
        "PEER_MODEL": str(ROOT / "models/mobilefacenet/1/model.onnx"),
        # Triton's Python stub links the system libpython; the peers' interpreter's own comes first
        "LD_LIBRARY_PATH": libdir(python),
    }
    log = open(tempfile.mktemp(suffix=".log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [python, script], cwd=HERE, env=full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}{PATHS[protocol]}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stop(proc)
            raise RuntimeError(f"{script} exited: {Path(log.name).read_text()[-1500:]}")
        if ready(url, protocol, jpeg):
            return proc, url
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"{script} did not answer in 120 s")


def stop(proc: subprocess.Popen) -> None:
    """The peer and every process it started (LitServe workers, Ray's raylet and replicas)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)


def libdir(python: str) -> str:
    code = "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def peer(python: str, name: str, jpegs: list[bytes], seconds: float, precision: str) -> dict:
    script, settings, protocol = PEERS[name]
    settings = [env | {"PEER_PRECISION": precision} for env in settings]
    best, best_qps = settings[0], -1.0
    if len(settings) > 1:
        for env in settings:
            proc, url = start_peer(python, script, env, protocol, jpegs[0])
            try:
                reqs = requests_for(url, protocol, jpegs, batched=True)
                closed_loop(url, reqs, 4, 2.0, ok=OK[protocol])
                qps = closed_loop(url, reqs, 16, seconds, ok=OK[protocol]).qps
            finally:
                stop(proc)
            print(name, env, f"{qps:.1f} req/s at c=16", flush=True)
            if qps > best_qps:
                best, best_qps = env, qps
    proc, url = start_peer(python, script, best, protocol, jpegs[0])
    try:
        reqs = requests_for(url, protocol, jpegs, batched=True)
        return {"settings": best, "tried": settings, "protocol": protocol} | measure(
            url, reqs, protocol, seconds
        )
    finally:
        stop(proc)


def versions(python: str) -> dict:
    names = ["fastapi", "litserve", "ray", "uvicorn", "onnxruntime", "openvino", "nvidia-pytriton"]
    code = f"import importlib.metadata as m, json; print(json.dumps({{p: m.version(p) for p in {names}}}))"
    return json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)


def serve_facepipe(name: str, jpegs: list[bytes], seconds: float) -> tuple[dict, str]:
    """facepipe as shipped (default config.yml, the named engine) measured over its protocol; with the
    precision its embedder runs at (from the KServe metadata), for the OpenVINO peers to match."""
    engine, protocol = FACEPIPE[name]
    shipped = yaml.safe_load((ROOT / "config.yml").read_text())["op"]["ArcFace"]
    op = {"ArcFace": shipped | {"local_service_conf": shipped["local_service_conf"] | {"engine": engine}}}
    path = "/ArcFace/prediction?format=json" if protocol == "seed" else PATHS["kserve"]
    with tempfile.TemporaryDirectory() as tmp:
        run = start_server(ROOT / "models", Path(tmp), {"dag": {"tracer": {"interval_s": 0}}, "op": op})
        try:
            meta = httpx.get(run.url + "/v2/models/mobilefacenet", timeout=10).json()
            precision = meta.get("parameters", {}).get("precision", "fp32")
            url = run.url + path
            reqs = requests_for(url, protocol, jpegs, batched=False)
            result = {"settings": f"default config.yml, engine {engine}", "protocol": protocol}
            return result | {"precision": precision} | measure(url, reqs, protocol, seconds), precision
        finally:
            stop_server(run)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers-python", default="/tmp/peers-venv/bin/python")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/lfw-dev")
    ap.add_argument(
        "--only", default="", help="comma-separated servers to re-measure; keep the others' results"
    )
    args = ap.parse_args()
    jpegs = [f.read_bytes() for f in sorted((args.data / "images").rglob("*.jpg"))[:700]]
    out = ROOT / "bench/results"
    only = {n for n in args.only.split(",") if n}
    previous = json.loads((out / "peers-cpu.json").read_text()) if only else {}
    res: dict = {"versions": versions(args.peers_python)}
    precision = "fp32"
    for name in FACEPIPE:
        if only and name not in only and name in previous:
            res[name] = previous[name]
            precision = previous[name].get("precision", precision)
            continue
        res[name], precision = serve_facepipe(name, jpegs, args.seconds)
        print(name, [round(r["qps"], 1) for r in res[name]["closed"]], flush=True)
    ov_precision = {"bf16": "bf16", "fp16": "f16"}.get(precision, "f32")
    for name in PEERS:
        keep = only and name not in only and name in previous
        res[name] = (
            previous[name] if keep else peer(args.peers_python, name, jpegs, args.seconds, ov_precision)
        )
        print(name, [round(r["qps"], 1) for r in res[name]["closed"]], flush=True)
    res["machine"] = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores"
    res["command"] = "python bench/peers/run.py " + " ".join(sys.argv[1:])
    res["load_average"] = os.getloadavg()
    (out / "peers-cpu.json").write_text(json.dumps(res, indent=2))
    report(res, out)


def race(res: dict, protocol: str) -> tuple[list[str], list[str]]:
    """The facepipe entries and the peers that speak ``protocol``."""
    ours = [n for n, (_, proto) in FACEPIPE.items() if proto == protocol and n in res]
    return ours, [n for n, (_, _, proto) in PEERS.items() if proto == protocol and n in res]


def tables(res: dict, names: list[str]) -> list[str]:
    def table(first: str, rows: list[str], mode: str, cell: Callable[[dict], str]) -> list[str]:
        """One markdown table: a row per level, a column per server, ``cell`` of each level's result."""
        head = [f"| {first} | " + " | ".join(names) + " |", "| --- " * (len(names) + 1) + "|"]
        body = [" | ".join(cell(res[n][mode][i]) for n in names) for i in range(len(rows))]
        return head + [f"| {row} | {cells} |" for row, cells in zip(rows, body, strict=True)]

    return [
        "Throughput (requests/s) / p99 (ms), closed loop:",
        "",
        *table(
            "concurrency", [str(c) for c in LEVELS], "closed", lambda r: f"{r['qps']:.1f} / {r['p99_ms']:.0f}"
        ),
        "",
        "p99 (ms) at equal offered load, open loop (Poisson), achieved rate in brackets:",
        "",
        *table("rate", [f"{r}/s" for r in RATES], "open", lambda r: f"{r['p99_ms']:.0f} ({r['qps']:.0f}/s)"),
    ]


def verdicts(res: dict, ours: list[str], peers: list[str]) -> list[str]:
    def ahead(name: str, mode: str, key: str, rows: list[int]) -> bool:
        """``name`` at least as good as every peer at each row: more ``qps``, or less ``p99_ms``."""
        sign = 1 if key == "qps" else -1
        return all(
            sign * res[name][mode][i][key] >= max(sign * res[n][mode][i][key] for n in peers) for i in rows
        )

    from_4 = [i for i, c in enumerate(LEVELS) if c >= 4]
    every_rate = list(range(len(RATES)))
    return [
        f"{name} leads {', '.join(peers)} in throughput at every concurrency ≥ 4: "
        f"**{'yes' if ahead(name, 'closed', 'qps', from_4) else 'no'}**; has the lowest p99 at every "
        f"offered rate: **{'yes' if ahead(name, 'open', 'p99_ms', every_rate) else 'no'}**."
        for name in ours
    ]


def report(res: dict, out: Path) -> None:
    seed_ours, seed_peers = race(res, "seed")
    kserve_ours, kserve_peers = race(res, "kserve")
    precision = res.get("facepipe", {}).get("precision", "fp32")
    settings = "; ".join(
        f"{n}: {res[n]['settings']}" for n in [*seed_ours, *kserve_ours, *seed_peers, *kserve_peers]
    )
    lines = [
        "# facepipe against the serving frameworks users would pick instead (CPU)",
        "",
        f"Machine: {res['machine']}, load average at the end {res.get('load_average', 'n/a')}; each server "
        "and the load generator (facepipe.tools.loadgen, one process) on the same cores. Command: "
        f"`{res['command']}`. The same MobileFaceNet ONNX, the same 700 LFW images, the same work per image "
        "(decode, resize to 112x112, normalise, inference, L2 norm, JSON numbers). facepipe runs as "
        f"shipped (`engine: auto`, OpenVINO, `precision: auto` = **{precision}** on this CPU); the "
        "OpenVINO peers run at the same precision; `facepipe-ort` is facepipe on "
        "onnxruntime (fp32), the first peers' runtime. "
        "Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()) + ".",
        "",
        f"Settings kept after tuning (best of the tried ones at concurrency 16): {settings}.",
        "",
        "## The seed's JSON (`POST /ArcFace/prediction`, base64 image)",
        "",
        *tables(res, seed_ours + seed_peers),
        "",
        *verdicts(res, seed_ours, seed_peers),
    ]
    if kserve_ours and kserve_peers:
        lines += [
            "",
            "## KServe v2 binary (`POST /v2/models/ArcFace/infer`, one JPEG per request as BYTES)",
            "",
            *tables(res, kserve_ours + kserve_peers),
            "",
            *verdicts(res, kserve_ours, kserve_peers),
        ]
    (out / "peers-cpu.md").write_text("\n".join(lines) + "\n")
    names = [*seed_ours, *kserve_ours, *seed_peers, *kserve_peers]
    series = {
        n: {"levels": res[n]["closed"], "mode": "concurrency", "protocol": n, "machine": res["machine"]}
        for n in names
    }
    plots.compare_bench(series, out / "peers-cpu.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
