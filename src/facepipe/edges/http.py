"""HTTP edge: the Starlette app and the routes every server has (seed pipeline protocol, KServe v2 with
its repository extension and A/B weights, health and metrics).

Handlers raise; ``Edge`` (edges/observe.py) maps each error to the protocol's own form, once: the seed
protocol answers HTTP 200 with ``err_no`` (503 when overloaded), KServe answers its status with
``{"error": ...}``, ``/v1`` with ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facepipe.api import jsondoc
from facepipe.api.auth import HEADER
from facepipe.edges import kserve, seed
from facepipe.edges.kserve import metadata
from facepipe.edges.observe import Edge, body_read
from facepipe.edges.state import ServerState
from facepipe.errors import FacepipeError, InvalidInput, NotFound, Overloaded, PayloadTooLarge
from facepipe.models.control import ModelControl
from facepipe.models.versions import VARIANT

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
    body_read(request)
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


class UnknownRoute(NotFound):
    """A path no route matches: the seed catch-all takes only the services the server serves."""


def seed_error(err: FacepipeError, request: Request) -> Response:
    if isinstance(err, UnknownRoute):  # both forms: a typo'd route is a 404, a seed client reads err_no
        body = {"error": {"code": err.code, "message": err.message}, "err_no": err.seed_err_no}
        return JsonResponse(body | {"err_msg": err.message, "key": [], "value": []}, status_code=404)
    logid = request.scope.get("facepipe.logid")
    body = {"err_no": err.seed_err_no, "err_msg": err.message, "key": [], "value": [], "tensors": []}
    body["logid"] = logid
    return JsonResponse(body, status_code=503 if isinstance(err, Overloaded) else 200)


def kserve_error(err: FacepipeError, _: Request) -> Response:
    return JsonResponse({"error": err.message}, status_code=err.http_status)


def seed_routes(state: ServerState, edge: Edge) -> list[Route]:
    async def prediction(request: Request) -> Response:
        name = request.path_params["service"]
        state.authorize_inference(request.headers.get(HEADER))
        if name not in state.seed:
            raise UnknownRoute(
                f"no route {request.method} {request.url.path}; see /openapi.json "
                f"(seed services: {sorted(state.seed)})"
            )
        body = await read_body(request, state.max_body_bytes)
        logid, feed = await jsondoc.sized(seed.parse_json, body)
        request.scope["facepipe.logid"] = logid
        as_json = request.query_params.get("format") == "json"
        reply = await seed.predict(state, name, feed, as_json, request.headers.get(state.sticky_header))
        out = {"err_no": 0, "err_msg": "", "key": reply.keys, "value": reply.values, "tensors": []}
        out |= {"logid": logid, "variant": reply.variant}
        return JsonResponse(out, headers={VARIANT: reply.variant})

    label = lambda r: state.label("seed", r.path_params["service"])  # noqa: E731
    return [edge.route("/{service}/{method}", prediction, label, seed_error, ["POST"])]


def kserve_routes(state: ServerState, edge: Edge, server_version: str) -> list[Route]:
    async def server_meta(_: Request) -> Response:
        ext = ["binary_tensor_data", "model_repository"]
        return JsonResponse({"name": "facepipe", "version": server_version, "extensions": ext})

    async def live(_: Request) -> Response:
        return Response(status_code=200)

    async def ready(_: Request) -> Response:
        return Response(status_code=200 if state.healthy() else 503)

    async def model_meta(request: Request) -> Response:
        name, version = request.path_params["model"], request.path_params.get("version")
        model = state.model(name, version)
        return JsonResponse(metadata(model, state.models[name].names()))

    async def model_ready(request: Request) -> Response:
        model = state.model(request.path_params["model"], request.path_params.get("version"))
        return Response(status_code=200 if model.ready() and state.healthy() else 503)

    async def infer(request: Request) -> Response:
        name = request.path_params["model"]
        state.authorize_inference(request.headers.get(HEADER))  # before any name is confirmed
        state.versions(name)  # an unknown model is a 404 before the body is read
        body = await read_body(request, state.max_body_bytes)
        header = request.headers.get(kserve.HEADER.lower())
        if header is not None and not header.isdigit():
            raise InvalidInput(f"{kserve.HEADER} must be an integer")
        head_length = int(header) if header is not None else None
        req = await jsondoc.sized(lambda b: kserve.parse_request(b, head_length), body)
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

    async def repo_index(_: Request) -> Response:
        return JsonResponse(state.index())

    def model_label(kind: str) -> Callable[[Request], str]:
        return lambda r: state.label(kind, r.path_params["model"])

    base = "/v2/models/{model}"
    meta, ready_label, infer_label = model_label("v2-meta"), model_label("v2-ready"), model_label("v2")
    return [
        edge.route("/v2", server_meta, "v2:server", kserve_error),
        edge.route("/v2/health/live", live, "v2:live", kserve_error),
        edge.route("/v2/health/ready", ready, "v2:ready", kserve_error),
        edge.route(base, model_meta, meta, kserve_error),
        edge.route(base + "/versions/{version}", model_meta, meta, kserve_error),
        edge.route(base + "/ready", model_ready, ready_label, kserve_error),
        edge.route(base + "/versions/{version}/ready", model_ready, ready_label, kserve_error),
        edge.route(base + "/infer", infer, infer_label, kserve_error, ["POST"]),
        edge.route(base + "/versions/{version}/infer", infer, infer_label, kserve_error, ["POST"]),
        edge.route("/v2/repository/index", repo_index, "v2:repository", kserve_error, ["POST"]),
    ]


async def _control_args(request: Request, state: ServerState) -> tuple[ModelControl, dict[str, Any]]:
    state.authorize(request.headers.get(HEADER))
    if state.control is None:
        raise NotFound("model control is not enabled on this server")
    body = await read_body(request, state.max_body_bytes)
    doc = await jsondoc.aloads(body) if body else {}
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


def control_routes(state: ServerState, edge: Edge) -> list[Route]:
    """The KServe repository extension's load/unload, plus the A/B weights (admin key required)."""

    def route(path: str, act: Callable[[ModelControl, str, dict[str, Any]], Awaitable[Any]]) -> Route:
        async def handler(request: Request) -> Response:
            control, params = await _control_args(request, state)
            return JsonResponse(await act(control, request.path_params["model"], params))

        return edge.route(path, handler, "v2:repository", kserve_error, ["POST"])

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
    """Probes and the scrape: not counted as requests (a scrape every few seconds is not traffic)."""

    async def healthz(_: Request) -> Response:
        return JsonResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        problems = state.problems()
        ready = state.ready and not problems
        body = {"ready": ready, "in_flight": state.in_flight(), "problems": problems}
        return JsonResponse(body, status_code=200 if ready else 503)

    async def metrics(_: Request) -> Response:
        state.metrics.in_flight.set(state.in_flight())
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def build_app(
    state: ServerState, edge: Edge, extra: list[Route] | None = None, server_version: str = ""
) -> Starlette:
    """Routes in order: ops, KServe v2, the caller's own (e.g. /v1), then the seed catch-all (for
    the services the server serves; any other path answers 404 in JSON)."""
    routes = ops_routes(state) + kserve_routes(state, edge, server_version) + control_routes(state, edge)
    routes += (extra or []) + seed_routes(state, edge)
    handlers = {404: no_route, 405: no_route}
    return Starlette(routes=routes, exception_handlers=handlers)  # type: ignore[arg-type]


async def no_route(request: Request, exc: HTTPException) -> Response:
    """A path no route takes (404) or a method the path does not have (405), in JSON like /v1."""
    what = "no route" if exc.status_code == 404 else "method not allowed:"
    message = f"{what} {request.method} {request.url.path}; the routes are in /openapi.json"
    code = "not_found" if exc.status_code == 404 else "method_not_allowed"
    body = {"error": {"code": code, "message": message}}
    return JsonResponse(body, status_code=exc.status_code, headers=exc.headers)
