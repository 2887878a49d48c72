"""``facepipe bench``: payloads for each protocol, concurrency sweeps and fixed-rate runs, result
files, a plot, and the comparison of two result files."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import platform
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from facepipe.client import unreachable
from facepipe.errors import InvalidInput
from facepipe.protos import grpc_predict_v2_pb2 as v2
from facepipe.protos import pipeline_service_pb2 as seed_pb
from facepipe.tools import loadgen
from facepipe.tools.loadgen import Level

PROTOCOLS = ("seed", "kserve", "v1-detect", "v1-embed", "v1-identify", "seed-grpc", "kserve-grpc")
SEED_METHOD = "/baidu.paddle_serving.pipeline_serving.PipelineService/inference"
KSERVE_METHOD = "/inference.GRPCInferenceService/ModelInfer"


@dataclass(slots=True)
class Target:
    protocol: str
    url: str  # HTTP base URL, or host:port for gRPC
    requests: list[bytes]
    ok: Callable[[int, bytes], bool] = loadgen.http_ok


def target(protocol: str, url: str, grpc_target: str, images: list[bytes], api_key: str | None) -> Target:
    """Pre-encoded requests of ``protocol``, one per image."""
    b64 = [base64.b64encode(img).decode() for img in images]
    if protocol == "seed":
        body = [json.dumps({"key": ["image"], "value": [v], "logid": i}).encode() for i, v in enumerate(b64)]
        full = url + "/ArcFace/prediction"
        return Target(protocol, full, [loadgen.encode_post(full, b) for b in body], loadgen.seed_ok)
    if protocol == "kserve":
        full = url + "/v2/models/ArcFace/infer"
        docs = [{"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [v]}]} for v in b64]
        return Target(protocol, full, [loadgen.encode_post(full, json.dumps(d).encode()) for d in docs])
    if protocol.startswith("v1-"):
        route = protocol[3:]
        full = url + f"/v1/{route}"
        headers = {"x-api-key": api_key} if api_key else None
        return Target(
            protocol, full, [loadgen.encode_post(full, img, "image/jpeg", headers) for img in images]
        )
    if protocol == "seed-grpc":
        seed_msgs = [seed_pb.Request(key=["image"], value=[v], logid=i) for i, v in enumerate(b64)]
        return Target(protocol, grpc_target, [m.SerializeToString() for m in seed_msgs])
    if protocol == "kserve-grpc":
        msgs = []
        for img in images:
            m = v2.ModelInferRequest(model_name="ArcFace")
            m.inputs.add(name="image", datatype="BYTES", shape=[1])
            m.raw_input_contents.append(struct.pack("<I", len(img)) + img)
            msgs.append(m.SerializeToString())
        return Target(protocol, grpc_target, msgs)
    raise InvalidInput(f"protocol {protocol!r}: expected one of {list(PROTOCOLS)}")


def reachable(url: str) -> None:
    """Raise ``Unreachable`` (with what to do) unless ``url`` answers HTTP: before a sweep, not as a
    traceback from inside the load generator."""
    try:
        httpx.get(url + "/healthz", timeout=10)
    except httpx.TransportError as exc:
        raise unreachable(url, exc) from None


def run_level(t: Target, seconds: float, concurrency: int = 0, rate: float = 0, processes: int = 1) -> Level:
    if t.protocol.endswith("-grpc"):
        if rate:
            raise InvalidInput("fixed-rate runs are HTTP only; use --concurrency for gRPC protocols")
        method = SEED_METHOD if t.protocol == "seed-grpc" else KSERVE_METHOD
        return loadgen.grpc_closed_loop(t.url, method, t.requests, concurrency, seconds)
    if rate:
        return loadgen.open_loop(t.url, t.requests, rate, seconds, processes, t.ok)
    return loadgen.closed_loop(t.url, t.requests, concurrency, seconds, processes, t.ok)


def sweep(
    t: Target,
    levels: list[int],
    seconds: float,
    mode: str,
    processes: int,
    warmup_s: float = 2.0,
    progress: Callable[[Level], None] = lambda _: None,
    starting: Callable[[str, float], None] = lambda _what, _seconds: None,
) -> dict[str, Any]:
    """Warm up, then one run per level (concurrency, or offered rate with ``mode == "rate"``);
    ``starting(what, seconds)`` before each run, ``progress(level)`` after it."""
    if warmup_s > 0:
        starting("warm-up", warmup_s)
        run_level(t, warmup_s, concurrency=max(1, min(levels)) if mode == "concurrency" else 1)
    results = []
    for level in levels:
        starting(f"{mode} {level}", seconds)
        kw = {"rate": float(level)} if mode == "rate" else {"concurrency": level}
        result = run_level(t, seconds, processes=processes, **kw)
        results.append(result)
        progress(result)
    return {
        "protocol": t.protocol,
        "url": t.url,
        "mode": mode,
        "seconds": seconds,
        "processes": processes,
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "levels": [dataclasses.asdict(r) for r in results],
    }


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[int, Level | None, Level | None]]:
    """Levels of two result files side by side, by concurrency (or rate)."""
    la = {lv["concurrency"]: Level(**lv) for lv in a["levels"]}
    lb = {lv["concurrency"]: Level(**lv) for lv in b["levels"]}
    return [(c, la.get(c), lb.get(c)) for c in sorted(la.keys() | lb.keys())]
