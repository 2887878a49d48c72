"""Wires config, face pipelines and model bundles into the generic server: the one place where
``serving/`` and ``face/`` meet."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facepipe import __version__, face_grpc
from facepipe.api import FaceService, face_operations, openapi_route
from facepipe.auth import ApiKeys
from facepipe.config import Config, OpConfig, stage_config
from facepipe.errors import InvalidInput
from facepipe.face import pipelines
from facepipe.face.decode import b64decode, sniff
from facepipe.gallery.gallery import Gallery
from facepipe.gallery_api import GalleryService, gallery_operations
from facepipe.operations import Operation, http_route
from facepipe.serving.bundle import TensorSpec
from facepipe.serving.grpc import GrpcEdge
from facepipe.serving.http import build_app
from facepipe.serving.pipeline import Pipeline
from facepipe.serving.repository import Repository
from facepipe.serving.server import Component, Server, ServerOptions
from facepipe.serving.service import InferModel, SeedService, TensorModel, check_inputs, gather_items
from facepipe.serving.state import ServerState
from facepipe.serving.tracer import Tracer

log = logging.getLogger(__name__)
IMAGE_KEYS = ("image", "img", "x")


def image_bytes(value: str | bytes, label: str = "image") -> bytes:
    """A seed/KServe image value: raw image bytes, or base64 text of them."""
    raw = value.encode("latin-1") if isinstance(value, str) else value
    if sniff(raw):
        return raw
    decoded = b64decode(raw)
    if decoded is None:
        raise InvalidInput(f"{label}: neither image bytes nor valid base64")
    return decoded


def seed_feed(feed: dict[str, str]) -> bytes:
    for key in IMAGE_KEYS:
        if key in feed:
            return image_bytes(feed[key], f"value of key {key!r}")
    raise InvalidInput(f"missing key: expected one of {list(IMAGE_KEYS)}, got {sorted(feed)}")


def seed_fetch(embedding: np.ndarray) -> dict[str, np.ndarray]:
    return {"out": embedding[None, :]}


@dataclass(slots=True)
class ImageModel:
    """An image pipeline as a KServe v2 model: ``image`` BYTES [N] in, ``embedding`` FP32 [N, D] out."""

    pipeline: Pipeline
    dim: int
    name: str = "ArcFace"
    version: str = "1"
    platform: str = "facepipe_pipeline"
    inputs: list[TensorSpec] = field(default_factory=lambda: [TensorSpec("image", [-1], "BYTES")])
    outputs: list[TensorSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.outputs = [TensorSpec("embedding", [-1, self.dim], "float32")]

    def ready(self) -> bool:
        return self.pipeline.running

    async def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self, inputs)
        items = [image_bytes(v, f"image[{i}]") for i, v in enumerate(inputs["image"].ravel())]
        if not items:
            raise InvalidInput("image: empty batch")
        return {"embedding": np.stack(await gather_items(self.pipeline, items))}


def _bundle_models(config: Config, repo: Repository) -> dict[str, dict[str, InferModel]]:
    models: dict[str, dict[str, InferModel]] = {}
    timeout = config.request_timeout_ms / 1000.0
    for entry in repo.index():
        if entry.state != "READY":
            log.warning("model %s/%s not served: %s", entry.name, entry.version, entry.reason)
            continue
        bundle = repo.bundle(entry.name, int(entry.version))
        op = config.op.get(entry.name) or OpConfig(
            batch_size=min(32, bundle.manifest.max_batch), auto_batching_timeout=1
        )
        stage = stage_config(config, entry.name, op)
        threads = op.local_service_conf.thread_num
        models.setdefault(entry.name, {})[entry.version] = TensorModel.build(bundle, stage, timeout, threads)
    return models


def build_state(config: Config, repo: Repository) -> ServerState:
    arcface = pipelines.arcface(config, repo)
    embedder = pipelines.embedder(config, repo).manifest
    models = _bundle_models(config, repo)
    models["ArcFace"] = {"1": ImageModel(arcface, embedder.embedding_dim or embedder.outputs[0].shape[-1])}
    seed = {"ArcFace": SeedService("ArcFace", arcface, seed_feed, seed_fetch)}
    return ServerState(seed, models, repo, config.max_body_bytes, config.json_numbers)


def face_service(config: Config, repo: Repository, state: ServerState) -> FaceService | None:
    """The /v1 face API over the photo pipelines whose models are installed (None: none is)."""
    detectors = {
        name: pipelines.photos(config, repo, name)
        for name, nets in pipelines.DETECTORS.items()
        if all(repo.versions(n) for n in nets)
    }
    if not detectors:
        log.warning("no detector models installed: /v1 is not served")
        return None
    crops = state.seed["ArcFace"].pipeline
    embedder = pipelines.embedder(config, repo).manifest
    model = {"name": embedder.name, "version": str(embedder.version)}
    spoof = (
        repo.bundle("antispoof").manifest.extra.get("spoof_above", 0.2)
        if repo.versions("antispoof")
        else None
    )
    state.extra.extend(detectors.values())
    dim = embedder.embedding_dim or embedder.outputs[0].shape[-1]
    return FaceService(detectors, crops, config.face, model, dim, spoof, config.max_body_bytes)


@dataclass(slots=True)
class GalleryPart:
    """The gallery as a server component: closed (writer drained, file closed) after HTTP stops."""

    gallery: Gallery

    async def start(self) -> None:
        return None

    async def stop(self, grace_s: float) -> None:
        await asyncio.to_thread(self.gallery.close)


def open_gallery(config: Config, faces: FaceService, data_dir: Path) -> Gallery:
    g = config.gallery
    model = (faces.model["name"], faces.model["version"])
    options: dict[str, Any] = {}
    if g.index == "ivf":
        options = {"nlist": g.ivf_nlist, "nprobe": g.ivf_nprobe, "merge_every": g.merge_every}
    elif g.index == "hnsw":
        options = {"hnsw_m": g.hnsw_m, "ef_search": g.hnsw_ef_search, "merge_every": g.merge_every}
    return Gallery.open(data_dir / g.file, model, faces.dim, g.index, **options)


def build_server(config: Config, models_dir: Path, data_dir: Path, on_started: Any = None) -> Server:
    repo = Repository(models_dir)
    state = build_state(config, repo)
    faces = face_service(config, repo, state)
    ops: list[Operation] = face_operations(faces) if faces is not None else []
    parts: list[Component] = []
    if faces is not None and config.gallery.enabled:
        gallery = open_gallery(config, faces, data_dir)
        keys = ApiKeys.from_config(config.auth)
        ops += gallery_operations(GalleryService(gallery, faces, keys, config.gallery))
        parts.append(GalleryPart(gallery))
    routes = [http_route(op, state.metrics, config.max_body_bytes) for op in ops]
    app = build_app(state, [*routes, openapi_route()], server_version=__version__)
    grpc_face = face_grpc.handler(ops, state.metrics) if ops else None
    parts.insert(0, GrpcEdge(state, config.host, config.rpc_port, __version__, grpc_face))
    tracer = Tracer(Path(config.log_dir) / "pipeline.tracer", config.dag.tracer.interval_s, state.pipelines)
    options = ServerOptions(config.host, config.http_port)
    return Server(state, app, options, tracer, parts, on_started)
