"""HTTP edge: the seed pipeline protocol, KServe v2 (JSON + binary tensors, repository load/unload and
A/B weights), health and metrics.

Errors are translated here, once: the seed protocol answers HTTP 200 with ``err_no`` (503 when
overloaded), KServe answers its status with ``{"error": ...}``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facepipe.errors import (
    FacepipeError,
    InvalidInput,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    as_facepipe_error,
)
from facepipe.serving import kserve, seed
from facepipe.serving.control import ModelControl
from facepipe.serving.service import metadata
from facepipe.serving.state import ServerState
from facepipe.serving.versions import VARIANT

log = logging.getLogger(__name__)


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


def dumps(content: Any) -> bytes:
    """JSON by orjson: numpy arrays as they are, several times faster than ``json.dumps`` on
    embeddings (which took a fifth of the server's busy time on ``/v1/embed``)."""
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class JsonResponse(Response):
    """A JSON response written by ``dumps``."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def _seed_error(err: FacepipeError, logid: Any) -> JsonResponse:
    body = {
        "err_no": err.seed_err_no,
        "err_msg": err.message,
        "key": [],
        "value": [],
        "tensors": [],
        "logid": logid,
    }
    return JsonResponse(body, status_code=503 if isinstance(err, Overloaded) else 200)


def seed_routes(state: ServerState) -> list[Route]:
    async def prediction(request: Request) -> Response:
        t0, name, logid, status = time.perf_counter(), request.path_params["service"], None, "ok"
        try:
            body = await read_body(request, state.max_body_bytes)
            logid, feed = seed.parse_json(body)
            as_json = request.query_params.get("format") == "json"
            reply = await seed.predict(state, name, feed, as_json, request.headers.get(state.sticky_header))
            out = {"err_no": 0, "err_msg": "", "key": reply.keys, "value": reply.values, "tensors": []}
            out |= {"logid": logid, "variant": reply.variant}
            return JsonResponse(out, headers={VARIANT: reply.variant})
        except Exception as exc:
            err = as_facepipe_error(exc)
            status = err.code
            return _seed_error(err, logid)
        finally:
            state.metrics.observe(f"seed:{name}", status, time.perf_counter() - t0)

    return [Route("/{service}/{method}", prediction, methods=["POST"])]


def _kserve_error(err: FacepipeError) -> JsonResponse:
    return JsonResponse({"error": err.message}, status_code=err.http_status)


def kserve_routes(state: ServerState, server_version: str) -> list[Route]:
    async def server_meta(_: Request) -> Response:
        ext = ["binary_tensor_data", "model_repository"]
        return JsonResponse({"name": "facepipe", "version": server_version, "extensions": ext})

    async def live(_: Request) -> Response:
        return Response(status_code=200)

    async def ready(_: Request) -> Response:
        return Response(status_code=200 if state.ready else 503)

    async def model_meta(request: Request) -> Response:
        try:
            name, version = request.path_params["model"], request.path_params.get("version")
            model = state.model(name, version)
            return JsonResponse(metadata(model, state.models[name].names()))
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
            state.versions(name)  # an unknown model is a 404 before anything else
            body = await read_body(request, state.max_body_bytes)
            header = request.headers.get(kserve.HEADER.lower())
            if header is not None and not header.isdigit():
                raise InvalidInput(f"{kserve.HEADER} must be an integer")
            req = kserve.parse_request(body, int(header) if header is not None else None)
            # picked right before submitting, with no wait in between: a version being retired
            # is either not picked or already counted in flight
            sticky = request.headers.get(state.sticky_header)
            model = state.model(name, request.path_params.get("version"), sticky)
            outputs = await model.infer(req.inputs)
            payload, head_len = kserve.build_response(model.name, model.version, req, outputs)
            headers = {VARIANT: f"{model.name}/{model.version}"}
            if head_len is not None:
                headers[kserve.HEADER] = str(head_len)
            media = "application/octet-stream" if head_len is not None else "application/json"
            return Response(payload, headers=headers, media_type=media)
        except Exception as exc:
            err = as_facepipe_error(exc)
            status = err.code
            return _kserve_error(err)
        finally:
            state.metrics.observe(f"v2:{name}", status, time.perf_counter() - t0)

    async def repo_index(_: Request) -> Response:
        return JsonResponse(state.index())

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


async def _control_args(request: Request, state: ServerState) -> tuple[ModelControl, dict[str, Any]]:
    state.authorize(request.headers.get("x-api-key"))
    if state.control is None:
        raise NotFound("model control is not enabled on this server")
    body = await read_body(request, state.max_body_bytes)
    try:
        doc = json.loads(body) if body else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"request is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("body must be a JSON object")
    nested = doc.get("parameters")
    params: dict[str, Any] = nested if isinstance(nested, dict) else doc
    return state.control, params


def _version(params: dict[str, Any]) -> int | None:
    raw = params.get("version")
    if raw is None:
        return None
    if not str(raw).isdigit():
        raise InvalidInput(f"version: expected a number, got {raw!r}")
    return int(raw)


def control_routes(state: ServerState) -> list[Route]:
    """The KServe repository extension's load/unload, plus the A/B weights (admin key required)."""

    def route(path: str, act: Callable[[ModelControl, str, dict[str, Any]], Awaitable[Any]]) -> Route:
        async def handler(request: Request) -> Response:
            t0, status = time.perf_counter(), "ok"
            try:
                control, params = await _control_args(request, state)
                return JsonResponse(await act(control, request.path_params["model"], params))
            except Exception as exc:
                err = as_facepipe_error(exc)
                status = err.code
                return _kserve_error(err)
            finally:
                state.metrics.observe("v2:repository", status, time.perf_counter() - t0)

        return Route(path, handler, methods=["POST"])

    async def load(control: ModelControl, name: str, params: dict[str, Any]) -> Any:
        model = control.resolve(name)
        outcome = await control.sync(model, pin=_version(params), explicit=True)
        rejected = {v: o for v, o in outcome.items() if o.startswith("rejected")}
        if rejected:
            raise InvalidInput(f"{model}: " + "; ".join(f"version {v} {o}" for v, o in rejected.items()))
        return {"model": model, "versions": outcome}

    async def unload(control: ModelControl, name: str, params: dict[str, Any]) -> Any:
        model = control.resolve(name)
        return {"model": model, "unloaded": await control.unload(model, _version(params))}

    async def weights(control: ModelControl, name: str, params: dict[str, Any]) -> Any:
        raw = params.get("weights")
        if not isinstance(raw, dict):
            raise InvalidInput('weights: expected an object of version -> weight, e.g. {"1": 90, "2": 10}')
        return {"weights": control.set_weights(name, {str(k): v for k, v in raw.items()})}

    base = "/v2/repository/models/{model}"
    return [route(base + "/load", load), route(base + "/unload", unload), route(base + "/weights", weights)]


def ops_routes(state: ServerState) -> list[Route]:
    async def healthz(_: Request) -> Response:
        return JsonResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        body = {"ready": state.ready, "in_flight": state.in_flight()}
        return JsonResponse(body, status_code=200 if state.ready else 503)

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
    routes = ops_routes(state) + kserve_routes(state, server_version) + control_routes(state)
    routes += (extra or []) + seed_routes(state)
    return Starlette(routes=routes)
