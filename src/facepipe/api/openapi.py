"""The OpenAPI 3 document of every public HTTP route (``GET /openapi.json``, browsable at ``/docs``):
the seed pipeline protocol, KServe v2 with its repository extension, the ``/v1`` face and gallery API,
the admin routes and the operations probes, with request and response schemas, errors and the
``x-api-key`` security scheme. Schemas live in ``api/openapi_schemas.py``."""

from __future__ import annotations

from typing import Any

from facepipe import __version__
from facepipe.api.openapi_schemas import Schema, ref, schemas

Op = dict[str, Any]
_ERRORS = {
    "400": ("BadRequest", "bad input, naming the image or parameter"),
    "401": ("Unauthorized", "missing or unknown x-api-key"),
    "403": ("Forbidden", "read-only key on a write, or no key configured"),
    "404": ("NotFound", "unknown subject, face, model or route"),
    "409": ("Conflict", "existing id, or embeddings of another model"),
    "413": ("TooLarge", "body or image over the limit"),
    "422": (
        "UnusableFace",
        "a face was refused: quality below min_quality, or require_live and a spoof score",
    ),
    "415": ("Unsupported", "not a JPEG, PNG, WebP or BMP image"),
    "503": ("Overloaded", "overloaded or not ready"),
    "504": ("Timeout", "deadline exceeded"),
}
READ: list[dict[str, list[str]]] = [{"ApiKey": []}, {}]  # read routes: open while no key is configured
WRITE: list[dict[str, list[str]]] = [{"ApiKey": []}]


def json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _images() -> dict[str, Any]:
    binary = {"type": "string", "format": "binary"}
    form = {"type": "object", "additionalProperties": binary}
    return {
        "multipart/form-data": {"schema": form},
        "image/*": {"schema": binary},
        **json_content(ref("ImagesJson")),
    }


def param(name: str, kind: str, text: str, where: str = "query", **extra: Any) -> dict[str, Any]:
    out = {"name": name, "in": where, "required": where == "path", "description": text}
    return out | {"schema": {"type": kind, **extra}}


_DETECT = [
    param("max_faces", "integer", "At most this many faces per image, largest first (0: all).", minimum=0),
    param("min_face_size", "number", "Smallest face side in pixels (default 40).", minimum=12),
    param("det_threshold", "number", "Final detection score threshold.", minimum=0, maximum=1),
    param("liveness", "boolean", "Add the anti-spoofing score to each face."),
    param("detector", "string", "Detector: mtcnn, or blazeface / blazeface_full where installed."),
]
_GATE = [
    param(
        "min_quality",
        "number",
        "Refuse faces whose quality score is below this (0..1; verify, identify: default 0; enrol: "
        "enrol.min_quality). The refusal names the weakest signal.",
        minimum=0,
        maximum=1,
    ),
    param(
        "require_live",
        "boolean",
        "Refuse faces the anti-spoofing model calls spoof (default face.require_live).",
    ),
]
_SID = param("sid", "string", "Subject id.", "path")
_FID = param("fid", "integer", "Face id.", "path")


def op(
    summary: str,
    answer: Schema | None,
    errors: str,
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    status: str = "200",
    tag: str = "face",
    security: list[dict[str, Any]] | None = None,
    content: dict[str, Any] | None = None,
    kserve: bool = False,
) -> Op:
    """One operation: its summary, parameters, body, answer and the error statuses it may give."""
    ok: dict[str, Any] = {"description": "OK"}
    if answer is not None or content is not None:
        ok["content"] = content or json_content(answer or {})
    responses = {status: ok}
    prefix = "KServe" if kserve else ""
    responses |= {s: {"$ref": f"#/components/responses/{prefix}{_ERRORS[s][0]}"} for s in errors.split()}
    out: Op = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        out["parameters"] = params
    if body is not None:
        out["requestBody"] = {"required": True, "content": body}
    if security is not None:
        out["security"] = security
    return out


def face_paths() -> dict[str, dict[str, Op]]:
    images, photos = _images(), ref("Detections")
    thr = param("threshold", "number", "Match threshold (default from config).")
    k = param("k", "integer", "Candidates per face (1..100).", minimum=1, maximum=100)
    aligned = param("aligned", "boolean", "Images are aligned 112x112 crops: no detection.")
    e = "400 413 415 503 504"
    return {
        "/v1/detect": {
            "post": op("Faces, boxes, scores, landmarks per image", photos, e, params=_DETECT, body=images)
        },
        "/v1/embed": {
            "post": op(
                "Embeddings of every face, or of aligned crops",
                ref("Embeddings"),
                e,
                params=[*_DETECT, aligned],
                body=images,
            )
        },
        "/v1/verify": {
            "post": op(
                "Two images (largest face each) or two embeddings: same person?",
                ref("Verification"),
                e + " 422",
                params=[*_DETECT, thr, *_GATE],
                body=images,
            )
        },
        "/v1/identify": {
            "post": op(
                "Who is in these photos (1:N against the gallery)",
                ref("Identification"),
                "400 401 403 409 413 415 422 503",
                params=[*_DETECT, k, thr, *_GATE],
                body=images,
                tag="gallery",
                security=READ,
            )
        },
        "/v1/identify/embeddings": {
            "post": op(
                "Nearest subjects of embeddings",
                ref("EmbeddingMatches"),
                "400 401 403 409 503",
                body=json_content(ref("EmbeddingsQuery")),
                tag="gallery",
                security=READ,
            )
        },
    }


def gallery_paths() -> dict[str, dict[str, Op]]:
    def g(summary: str, answer: Schema | None, errors: str, write: bool, **kw: Any) -> Op:
        return op(summary, answer, errors, tag="gallery", security=WRITE if write else READ, **kw)

    paging = [
        param("offset", "integer", "Skip this many subjects.", minimum=0),
        param("limit", "integer", "At most this many (1..1000, default 100).", minimum=1, maximum=1000),
    ]
    enrol = [
        param(
            "on_no_face",
            "string",
            "error (default: 400, or 422 for a refused face; nothing enrolled) or skip.",
            enum=["error", "skip"],
        ),
        param("on_many_faces", "string", "largest (default) or error.", enum=["largest", "error"]),
        param("aligned", "boolean", "Images are aligned 112x112 crops."),
        *_DETECT,
        *_GATE,
    ]
    png = {"image/png": {"schema": {"type": "string", "format": "binary"}}}
    return {
        "/v1/subjects": {
            "post": g(
                "Create a subject",
                ref("Subject"),
                "400 401 403 409",
                True,
                body=json_content(ref("NewSubject")),
                status="201",
            ),
            "get": g("List subjects", ref("SubjectList"), "400 401 403", False, params=paging),
        },
        "/v1/subjects/{sid}": {
            "get": g("A subject", ref("Subject"), "401 403 404", False, params=[_SID]),
            "patch": g(
                "Rename or re-tag a subject",
                ref("Subject"),
                "400 401 403 404",
                True,
                params=[_SID],
                body=json_content(ref("SubjectUpdate")),
            ),
            "delete": g(
                "Delete a subject and its faces", ref("SubjectDeleted"), "401 403 404", True, params=[_SID]
            ),
        },
        "/v1/subjects/{sid}/faces": {
            "post": g(
                "Enrol the best face of each image",
                ref("Enrolment"),
                "400 401 403 404 409 413 415 422 503",
                True,
                params=[_SID, *enrol],
                body=_images(),
                status="201",
            ),
            "get": g("The faces of a subject", ref("FaceList"), "401 403 404", False, params=[_SID]),
        },
        "/v1/faces/{fid}": {
            "get": g(
                "A face record (no embedding)", ref("FaceRecord"), "400 401 403 404", False, params=[_FID]
            ),
            "delete": g("Delete a face", ref("FaceDeleted"), "400 401 403 404", True, params=[_FID]),
        },
        "/v1/faces/{fid}/crop": {
            "get": g("The stored aligned crop", None, "400 401 403 404", False, params=[_FID], content=png),
        },
    }


def document() -> dict[str, Any]:
    from facepipe.api.openapi_collections import collection_paths, collection_schemas
    from facepipe.api.openapi_paths import admin_paths, kserve_paths, seed_paths, ui_paths

    face, gallery = face_paths(), gallery_paths()
    identify = {p: face[p] for p in ("/v1/identify", "/v1/identify/embeddings")}
    paths = {
        **face,
        **gallery,
        **collection_paths(gallery | identify),
        **kserve_paths(),
        **admin_paths(),
        **seed_paths(),
        **ui_paths(),
    }
    responses = {}
    for name, text in _ERRORS.values():
        responses[name] = {"description": text, "content": json_content(ref("Error"))}
        responses["KServe" + name] = {"description": text, "content": json_content(ref("KServeError"))}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "facepipe",
            "version": __version__,
            "description": "Face detection, embedding, verification and 1:N identification; the seed "
            "pipeline protocol and KServe v2 (Open Inference Protocol). Errors: /v1 answers "
            '{"error": {"code", "message"}}, KServe {"error": "..."}, the seed protocol HTTP 200 '
            "with err_no.",
        },
        "tags": [
            {"name": n, "description": d}
            for n, d in (
                ("face", "Detection, embedding, verification"),
                ("gallery", "Subjects, faces, identification"),
                ("collections", "Galleries of their own in one server (server admin key)"),
                ("kserve", "Open Inference Protocol v2"),
                ("admin", "Model repository control (admin key)"),
                ("seed", "Paddle Serving pipeline protocol"),
                ("ui", "The web UI's pages and files"),
                ("operations", "Probes, metrics, this document"),
            )
        ],
        "paths": paths,
        "components": {
            "schemas": schemas() | collection_schemas(),
            "responses": responses,
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
    }
