"""The OpenAPI paths of the seed protocol, KServe v2 (with its repository extension), the admin
routes and the operations probes (the ``/v1`` paths are in ``api/openapi.py``)."""

from __future__ import annotations

from typing import Any

from facepipe.api.openapi import WRITE, Op, json_content, op, param
from facepipe.api.openapi_schemas import BOOL, INT, STR, ref
from facepipe.api.openapi_schemas import obj as schema_obj

_MODEL = param("model", "string", "Model name: a bundle, or ArcFace.", "path")
_VERSION = param("version", "string", "Model version.", "path")


def _k(summary: str, answer: Any, errors: str, **kw: Any) -> Op:
    return op(summary, answer, errors, tag="kserve", kserve=True, **kw)


def kserve_paths() -> dict[str, dict[str, Op]]:
    base, ver = "/v2/models/{model}", "/v2/models/{model}/versions/{version}"
    binary = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    infer_body = {**json_content(ref("InferRequest")), **binary}
    infer_out = {**json_content(ref("InferResponse")), **binary}
    out: dict[str, dict[str, Op]] = {
        "/v2": {"get": _k("Server metadata", ref("ServerMetadata"), "")},
        "/v2/health/live": {"get": _k("Alive (200)", None, "")},
        "/v2/health/ready": {"get": _k("Ready (200) or not (503)", None, "503")},
        "/v2/repository/index": {
            "post": _k("Every model version with its state and reason", ref("RepositoryIndex"), "")
        },
    }
    for path, params in ((base, [_MODEL]), (ver, [_MODEL, _VERSION])):
        out[path] = {"get": _k("Model metadata", ref("ModelMetadata"), "404", params=params)}
        out[path + "/ready"] = {"get": _k("Model ready (200) or not (503)", None, "404 503", params=params)}
        infer = _k(
            "Inference: JSON tensors, or the binary tensor extension "
            "(Inference-Header-Content-Length header)",
            None,
            "400 404 413 503 504",
            params=params,
            body=infer_body,
            content=infer_out,
        )
        out[path + "/infer"] = {"post": infer}
    return out


def admin_paths() -> dict[str, dict[str, Op]]:
    base = "/v2/repository/models/{model}"

    def a(summary: str, body: Any) -> dict[str, Op]:
        answer = ref("ControlResult")
        kw: dict[str, Any] = {"params": [_MODEL], "security": WRITE, "tag": "admin", "kserve": True}
        return {"post": op(summary, answer, "400 401 403 404", body=json_content(body), **kw)}

    problems = {
        "type": "array",
        "items": STR,
        "description": "why not ready (e.g. a store that cannot write)",
    }
    ready = schema_obj(("ready", "in_flight"), ready=BOOL, in_flight=INT, problems=problems)
    plain = {"text/plain": {"schema": STR}}
    html = {"text/html": {"schema": STR}}
    asset = param("asset", "string", "swagger-ui-bundle.js, swagger-ui.css or a licence file.", "path")

    def ops(summary: str, answer: Any = None, errors: str = "", **kw: Any) -> dict[str, Op]:
        return {"get": op(summary, answer, errors, tag="operations", **kw)}

    return {
        base + "/load": a(
            "Load a model's versions by its policy (or a named version)", ref("ControlRequest")
        ),
        base + "/unload": a("Unload a model (or one version)", ref("ControlRequest")),
        base + "/weights": a("Set the A/B traffic split", ref("Weights")),
        "/healthz": ops("Process alive", schema_obj(("status",), status=STR)),
        "/readyz": ops("Ready for traffic (503 while starting or draining)", ready, "503"),
        "/metrics": ops("Prometheus metrics", content=plain),
        "/openapi.json": ops("This document", {"type": "object"}),
        "/docs": ops("Swagger UI over this document", content=html),
        "/docs/{asset}": ops(
            "Swagger UI's files (served locally)",
            content={"*/*": {"schema": STR}},
            params=[asset],
            errors="404",
        ),
    }


def seed_paths() -> dict[str, dict[str, Op]]:
    params = [
        param("service", "string", "A served seed service: ArcFace.", "path"),
        param("method", "string", "Any method name (prediction).", "path"),
        param("format", "string", "json: embeddings as JSON numbers, not numpy repr text.", enum=["json"]),
    ]
    summary = (
        "Paddle Serving pipeline call: errors answer HTTP 200 with err_no (503 when overloaded); "
        "a service the server does not serve answers 404"
    )
    seed = op(
        summary,
        ref("SeedResponse"),
        "404 503",
        params=params,
        body=json_content(ref("SeedRequest")),
        tag="seed",
    )
    text = "not a service this server serves (nor any other route)"
    seed["responses"]["404"] = {"description": text, "content": json_content(ref("SeedNotFound"))}
    return {"/{service}/{method}": {"post": seed}}


def ui_paths() -> dict[str, dict[str, Op]]:
    """The web UI's pages, files and the two small JSON routes its scripts read (edges/ui.py)."""
    html = {"text/html": {"schema": STR}}

    def get(summary: str, answer: Any = None, errors: str = "", **kw: Any) -> dict[str, Op]:
        return {"get": op(summary, answer, errors, tag="ui", **kw)}

    def moved(summary: str) -> dict[str, Op]:
        answer = get(summary)
        answer["get"]["responses"] = {"307": {"description": "Redirect"}}
        return answer

    roles = ["admin", "read", "none"]
    return {
        "/": moved("Redirect to the web UI"),
        "/ui": moved("Redirect to the web UI's gallery page"),
        "/ui/{page}": get(
            "A web UI page",
            content=html,
            params=[param("page", "string", "gallery, identify, verify, models or live.", "path")],
            errors="404",
        ),
        "/ui/static/{name}": get(
            "The web UI's scripts and styles",
            content={"*/*": {"schema": STR}},
            params=[param("name", "string", "A file of the UI.", "path")],
            errors="404",
        ),
        "/ui/api/role": get(
            "What the request's x-api-key may do (the UI hides write actions from read keys)",
            schema_obj(("role",), role={"type": "string", "enum": roles}),
        ),
        "/ui/api/weights": get("The A/B weights in force, by served name and version", {"type": "object"}),
    }
