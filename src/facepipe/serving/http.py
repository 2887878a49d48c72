"""HTTP edge: the seed pipeline protocol, KServe v2 (JSON + binary tensors), health and metrics.

Errors are translated here, once: the seed protocol answers HTTP 200 with ``err_no`` (503 when
overloaded), KServe answers its status with ``{"error": ...}``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from facepipe.errors import FacepipeError, InvalidInput, NotFound, Overloaded, PayloadTooLarge
from facepipe.serving import kserve
from facepipe.serving.service import metadata
from facepipe.serving.state import ServerState

log = logging.getLogger(__name__)
PROFILE_KEY = "pipeline.profile"


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def numpy_repr(arr: np.ndarray) -> str:
    with np.printoptions(threshold=sys.maxsize):
        return repr(arr)


def _internal(exc: Exception) -> FacepipeError:
    if isinstance(exc, FacepipeError):
        return exc
    log.exception("internal error", exc_info=exc)
    return FacepipeError(f"internal error: {type(exc).__name__}")


def _seed_error(err: FacepipeError, logid: Any) -> JSONResponse:
    body = {
        "err_no": err.seed_err_no,
        "err_msg": err.message,
        "key": [],
        "value": [],
        "tensors": [],
        "logid": logid,
    }
    return JSONResponse(body, status_code=503 if isinstance(err, Overloaded) else 200)


def _parse_seed(body: bytes) -> tuple[dict[str, Any], dict[str, str]]:
    try:
        req = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"request is not valid JSON: {exc}") from None
    if not isinstance(req, dict):
        raise InvalidInput("request must be a JSON object with 'key' and 'value' lists")
    keys, values = req.get("key"), req.get("value")
    if not isinstance(keys, list) or not isinstance(values, list) or len(keys) != len(values):
        raise InvalidInput("'key' and 'value' must be lists of the same length")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in zip(keys, values, strict=True)):
        raise InvalidInput("'key' and 'value' entries must be strings")
    return req, dict(zip(keys, values, strict=True))


def seed_routes(state: ServerState) -> list[Route]:
    async def prediction(request: Request) -> Response:
        t0, name, logid, status = time.perf_counter(), request.path_params["service"], None, "ok"
        try:
            body = await read_body(request, state.max_body_bytes)
            req, feed = _parse_seed(body)
            logid = req.get("logid")
            service = state.seed.get(name)
            if service is None:
                raise NotFound(f"service {name!r} is not served; services: {sorted(state.seed)}")
            profile = feed.pop(PROFILE_KEY, "0") in ("1", "true")
            result = await service.pipeline.submit(service.feed(feed))
            out = service.fetch(result.value)
            as_json = state.json_numbers or request.query_params.get("format") == "json"
            keys: list[str] = list(out)
            values: list[Any] = [o.tolist() if as_json else numpy_repr(o) for o in out.values()]
            if profile:
                keys.append(PROFILE_KEY)
                values.append(json.dumps([{"op": s, "in_ms": q, "midp_ms": r} for s, q, r in result.profile]))
            body_out = {
                "err_no": 0,
                "err_msg": "",
                "key": keys,
                "value": values,
                "tensors": [],
                "logid": logid,
            }
            return JSONResponse(body_out)
        except Exception as exc:
            err = _internal(exc)
            status = err.code
            return _seed_error(err, logid)
        finally:
            state.metrics.observe(f"seed:{name}", status, time.perf_counter() - t0)

    return [Route("/{service}/{method}", prediction, methods=["POST"])]


def _kserve_error(err: FacepipeError) -> JSONResponse:
    return JSONResponse({"error": err.message}, status_code=err.http_status)


def kserve_routes(state: ServerState, server_version: str) -> list[Route]:
    async def server_meta(_: Request) -> Response:
        ext = ["binary_tensor_data", "model_repository"]
        return JSONResponse({"name": "facepipe", "version": server_version, "extensions": ext})

    async def live(_: Request) -> Response:
        return Response(status_code=200)

    async def ready(_: Request) -> Response:
        return Response(status_code=200 if state.ready else 503)

    async def model_meta(request: Request) -> Response:
        try:
            name, version = request.path_params["model"], request.path_params.get("version")
            model = state.model(name, version)
            return JSONResponse(metadata(model, sorted(state.models[name])))
        except FacepipeError as err:
            return _kserve_error(err)

    async def model_ready(request: Request) -> Response:
        try:
            model = state.model(request.path_params["model"], request.path_params.get("version"))
        except FacepipeError as err:
            return _kserve_error(err)
        return Response(status_code=200 if model.ready() and state.ready else 503)

    async def infer(request: Request) -> Response:
        t0, name, status = time.perf_counter(), request.path_params["model"], "ok"
        try:
            model = state.model(name, request.path_params.get("version"))
            body = await read_body(request, state.max_body_bytes)
            header = request.headers.get(kserve.HEADER.lower())
            if header is not None and not header.isdigit():
                raise InvalidInput(f"{kserve.HEADER} must be an integer")
            req = kserve.parse_request(body, int(header) if header is not None else None)
            outputs = await model.infer(req.inputs)
            payload, head_len = kserve.build_response(model.name, model.version, req, outputs)
            headers = {kserve.HEADER: str(head_len)} if head_len is not None else {}
            media = "application/octet-stream" if head_len is not None else "application/json"
            return Response(payload, headers=headers, media_type=media)
        except Exception as exc:
            err = _internal(exc)
            status = err.code
            return _kserve_error(err)
        finally:
            state.metrics.observe(f"v2:{name}", status, time.perf_counter() - t0)

    async def repo_index(_: Request) -> Response:
        if state.repository is None:
            return JSONResponse([])
        served = {(n, v) for n, vs in state.models.items() for v in vs}
        rows = []
        for e in state.repository.index():
            entry = {"name": e.name, "version": e.version, "state": e.state, "reason": e.reason}
            if e.state == "READY" and (e.name, e.version) not in served:
                entry |= {"state": "UNAVAILABLE", "reason": "not loaded"}
            rows.append(entry)
        return JSONResponse(rows)

    base = "/v2/models/{model}"
    return [
        Route("/v2", server_meta, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route(base, model_meta, methods=["GET"]),
        Route(base + "/versions/{version}", model_meta, methods=["GET"]),
        Route(base + "/ready", model_ready, methods=["GET"]),
        Route(base + "/versions/{version}/ready", model_ready, methods=["GET"]),
        Route(base + "/infer", infer, methods=["POST"]),
        Route(base + "/versions/{version}/infer", infer, methods=["POST"]),
        Route("/v2/repository/index", repo_index, methods=["POST"]),
    ]


def ops_routes(state: ServerState) -> list[Route]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        body = {"ready": state.ready, "in_flight": state.in_flight()}
        return JSONResponse(body, status_code=200 if state.ready else 503)

    async def metrics(_: Request) -> Response:
        state.metrics.in_flight.set(state.in_flight())
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def build_app(state: ServerState, extra: list[Route] | None = None, server_version: str = "") -> Starlette:
    """Routes in order: ops, KServe v2, the caller's own (e.g. /v1), then the seed catch-all."""
    routes = ops_routes(state) + kserve_routes(state, server_version) + (extra or []) + seed_routes(state)
    return Starlette(routes=routes)
