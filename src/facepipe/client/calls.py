"""What ``facepipe.client`` sends and how it reads the answers: one ``Call`` per operation, shared by
the blocking and the asyncio client, with typed results."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import numpy as np

from facepipe import errors

T = TypeVar("T")
Image = str | Path | bytes
GALLERY_PATHS = ("/v1/subjects", "/v1/faces", "/v1/identify")  # what a collection scopes


@dataclass(slots=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    data: dict[str, str] | None = None
    params: dict[str, str] | None = None
    raw: bool = False  # parse the body bytes, not JSON
    rpc: str = ""  # the facepipe.v1.Face method of the same operation ("": HTTP only)
    sid: str = ""  # the route's subject id
    fid: int = 0  # the route's face id
    collection: str = ""  # the gallery collection ("": the default)


@dataclass(slots=True)
class Match:
    subject: str
    name: str
    similarity: float
    match: bool
    face: int


@dataclass(slots=True)
class DetectedFace:
    box: tuple[float, float, float, float]
    score: float
    size: float
    landmarks: list[tuple[float, float]]
    liveness: float | None = None
    real: bool | None = None
    embedding: np.ndarray | None = None
    matches: list[Match] | None = None  # /v1/identify only (best first); None where not asked
    quality: dict[str, float] | None = None  # {"score", "sharpness", "yaw", "pitch", "roll", "size", ...}
    refused: str | None = None  # /v1/identify only: why min_quality or require_live refused this face


@dataclass(slots=True)
class ImageResult:
    image: int
    width: int
    height: int
    faces: list[DetectedFace]


@dataclass(slots=True)
class Verification:
    similarity: float
    threshold: float
    match: bool
    model: dict[str, str] = field(default_factory=dict)
    faces: list[DetectedFace] = field(default_factory=list)  # the face compared in each image


@dataclass(slots=True)
class Subject:
    id: str
    name: str
    metadata: dict[str, Any]
    faces: int
    created: float = 0.0  # unix time


@dataclass(slots=True)
class FaceInfo:
    id: int
    subject: str
    model: dict[str, str]
    image_sha256: str
    quality: dict[str, Any]
    created: float
    has_crop: bool


@dataclass(slots=True)
class EnrolledFace:
    id: int
    image: int
    created: bool


@dataclass(slots=True)
class Enrolment:
    subject: str
    faces: list[EnrolledFace]
    skipped: list[int]


_ERRORS: dict[str, type[errors.FacepipeError]] = {
    c.code: c
    for c in (
        errors.InvalidInput,
        errors.PayloadTooLarge,
        errors.UnusableFace,
        errors.UnsupportedMediaType,
        errors.NotFound,
        errors.Conflict,
        errors.Unauthorized,
        errors.Forbidden,
        errors.Overloaded,
        errors.NotReady,
        errors.StoreUnavailable,
        errors.DeadlineExceeded,
    )
}


_BY_STATUS = {c.http_status: c for c in reversed(_ERRORS.values())}  # the first class of each status


def server_error(status: int, body: Any) -> errors.FacepipeError:
    """The exception for an error answer: the server's own error class where it names one."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        cls = _ERRORS.get(str(err.get("code")), errors.FacepipeError)
        return cls(str(err.get("message", "")))
    message = err if isinstance(err, str) else f"HTTP {status}: {str(body)[:200]}"  # KServe form, or none
    return _BY_STATUS.get(status, errors.InvalidInput if status < 500 else errors.FacepipeError)(message)


def _read(image: Image) -> tuple[str, bytes]:
    if isinstance(image, bytes):
        return "image", image
    path = Path(image)
    return path.name, path.read_bytes()


def _files(images: Sequence[Image]) -> list[tuple[str, tuple[str, bytes, str]]]:
    if not images:
        raise errors.InvalidInput("no image given")
    return [("image", (*_read(img), "application/octet-stream")) for img in images]


def _form(params: dict[str, Any]) -> dict[str, str]:
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items() if v is not None}


def _face(doc: dict[str, Any]) -> DetectedFace:
    b = doc["box"]
    live = doc.get("liveness") or {}
    emb = doc.get("embedding")
    return DetectedFace(
        (b["x1"], b["y1"], b["x2"], b["y2"]),
        doc["score"],
        doc["size"],
        [tuple(p) for p in doc["landmarks"]],
        live.get("score"),
        live.get("real"),
        None if emb is None else np.asarray(emb, np.float32),
        None if "matches" not in doc else [Match(**m) for m in doc["matches"]],
        doc.get("quality"),
        doc.get("refused"),
    )


def _images(doc: dict[str, Any]) -> list[ImageResult]:
    return [
        ImageResult(r["image"], r["width"], r["height"], [_face(f) for f in r["faces"]])
        for r in doc["results"]
    ]


def _subject(doc: dict[str, Any]) -> Subject:
    return Subject(doc["id"], doc["name"], doc["metadata"], doc["faces"], doc.get("created", 0.0))


def detect(images: Sequence[Image], **params: Any) -> Call[list[ImageResult]]:
    return Call("POST", "/v1/detect", _images, files=_files(images), data=_form(params), rpc="Detect")


def embed(images: Sequence[Image], **params: Any) -> Call[list[ImageResult]]:
    return Call("POST", "/v1/embed", _images, files=_files(images), data=_form(params), rpc="Embed")


def embed_aligned(images: Sequence[Image]) -> Call[np.ndarray]:
    def parse(doc: dict[str, Any]) -> np.ndarray:
        return np.asarray([r["embedding"] for r in doc["results"]], np.float32)

    return Call("POST", "/v1/embed", parse, files=_files(images), data={"aligned": "true"}, rpc="Embed")


def verify(a: Image, b: Image, threshold: float | None = None, **params: Any) -> Call[Verification]:
    """``params``: ``min_quality``, ``require_live`` and the detection parameters."""

    def parse(doc: dict[str, Any]) -> Verification:
        faces = [_face(f) for f in doc.get("faces", [])]
        return Verification(doc["similarity"], doc["threshold"], doc["match"], doc.get("model", {}), faces)

    data = _form({"threshold": threshold, **params})
    return Call("POST", "/v1/verify", parse, files=_files([a, b]), data=data, rpc="Verify")


def identify(
    images: Sequence[Image], k: int = 1, threshold: float | None = None, **params: Any
) -> Call[list[ImageResult]]:
    data = _form({"k": k, "threshold": threshold, **params})
    return Call("POST", "/v1/identify", _images, files=_files(images), data=data, rpc="Identify")


def identify_embeddings(embeddings: np.ndarray, k: int = 1) -> Call[list[list[Match]]]:
    def parse(doc: dict[str, Any]) -> list[list[Match]]:
        return [[Match(**m) for m in r["matches"]] for r in doc["results"]]

    body = {"embeddings": np.asarray(embeddings, np.float32).tolist(), "k": k}
    return Call("POST", "/v1/identify/embeddings", parse, json=body, rpc="IdentifyEmbeddings")


def create_subject(name: str, id: str | None = None, metadata: dict[str, Any] | None = None) -> Call[Subject]:
    body = {"name": name, "id": id, "metadata": metadata or {}}
    doc = {k: v for k, v in body.items() if v is not None}
    return Call("POST", "/v1/subjects", _subject, json=doc, rpc="SubjectsCreate")


def subject(sid: str) -> Call[Subject]:
    return Call("GET", f"/v1/subjects/{sid}", _subject, rpc="SubjectsGet", sid=sid)


def subjects(offset: int = 0, limit: int = 100) -> Call[tuple[list[Subject], int]]:
    def parse(doc: dict[str, Any]) -> tuple[list[Subject], int]:
        return [_subject(s) for s in doc["subjects"]], doc["total"]

    paging = {"offset": str(offset), "limit": str(limit)}
    return Call("GET", "/v1/subjects", parse, params=paging, rpc="SubjectsList")


def delete_subject(sid: str) -> Call[int]:
    return Call("DELETE", f"/v1/subjects/{sid}", lambda doc: int(doc["faces"]), rpc="SubjectsDelete", sid=sid)


def enrol(sid: str, images: Sequence[Image], **params: Any) -> Call[Enrolment]:
    def parse(doc: dict[str, Any]) -> Enrolment:
        faces = [EnrolledFace(f["id"], f["image"], f["created"]) for f in doc["faces"]]
        return Enrolment(doc["subject"], faces, [s["image"] for s in doc["skipped"]])

    files = _files(images)
    return Call(
        "POST", f"/v1/subjects/{sid}/faces", parse, files=files, data=_form(params), rpc="FacesEnrol", sid=sid
    )


def faces(sid: str) -> Call[list[FaceInfo]]:
    def parse(doc: dict[str, Any]) -> list[FaceInfo]:
        return [FaceInfo(**f) for f in doc["faces"]]

    return Call("GET", f"/v1/subjects/{sid}/faces", parse, rpc="FacesList", sid=sid)


def delete_face(fid: int) -> Call[None]:
    return Call("DELETE", f"/v1/faces/{fid}", lambda _: None, rpc="FacesDelete", fid=fid)


def face_crop(fid: int) -> Call[bytes]:
    return Call("GET", f"/v1/faces/{fid}/crop", bytes, raw=True, rpc="FacesCrop", fid=fid)


def infer(
    model: str, inputs: dict[str, np.ndarray], version: str | None = None
) -> Call[dict[str, np.ndarray]]:
    """A KServe v2 JSON inference on a bundle or pipeline (``image`` BYTES inputs as bytes objects)."""
    tensors = []
    for name, arr in inputs.items():
        if arr.dtype == object:
            data: list[Any] = [
                base64.b64encode(v).decode() if isinstance(v, bytes) else v for v in arr.ravel()
            ]
            dtype = "BYTES"
        else:
            data, dtype = arr.ravel().tolist(), {"f": "FP32", "i": "INT64", "u": "UINT8"}[arr.dtype.kind]
        tensors.append({"name": name, "shape": list(arr.shape), "datatype": dtype, "data": data})

    def parse(doc: dict[str, Any]) -> dict[str, np.ndarray]:
        return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in doc["outputs"]}

    base = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
    return Call("POST", base + "/infer", parse, json={"inputs": tensors})


def face_request(call: Call[Any]) -> Any:
    """The facepipe.v1.Face request of ``call`` (the same operation as its HTTP route)."""
    from facepipe.protos import face_service_pb2 as pb

    if not call.rpc:
        raise errors.InvalidInput(f"{call.method} {call.path} is not part of the gRPC face API; use HTTP")
    images = [f[1][1] for f in call.files or []]
    params = {**(call.data or {}), **(call.params or {})}
    body = json.dumps(call.json) if call.json is not None else ""
    return pb.FaceRequest(
        images=images, params=params, json=body, subject=call.sid, face=call.fid, collection=call.collection
    )


def in_collection(call: Call[T], collection: str | None) -> Call[T]:
    """``call`` on gallery ``collection``: under /v1/collections/{name} over HTTP, in the request's
    ``collection`` over gRPC (other calls, and no collection, unchanged)."""
    if not collection or not call.path.startswith(GALLERY_PATHS):
        return call
    path = f"/v1/collections/{quote(collection, safe='')}{call.path[3:]}"
    return replace(call, path=path, collection=collection)


def face_reply(call: Call[T], reply: Any) -> T:
    return call.parse(bytes(reply.data) if call.raw else json.loads(reply.json))


_BY_GRPC = {c.grpc_status: c for c in _ERRORS.values() if c.grpc_status != "INVALID_ARGUMENT"}
_BY_GRPC["RESOURCE_EXHAUSTED"] = errors.Overloaded  # Ray Serve's proxy, its queues full


def grpc_error(code: str, details: str) -> errors.FacepipeError:
    """The exception for a gRPC status (the server's error classes map one-to-one on statuses)."""
    cls = errors.InvalidInput if code == "INVALID_ARGUMENT" else _BY_GRPC.get(code, errors.FacepipeError)
    return cls(details)
