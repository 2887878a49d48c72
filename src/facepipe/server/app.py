"""Wires config, face pipelines and model bundles into the generic server: the one place where
``engine/``, ``face/``, ``gallery/``, ``api/`` and ``edges/`` meet."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from facepipe import __version__
from facepipe.api.auth import ApiKeys
from facepipe.api.collections import collection_operations
from facepipe.api.face import FaceService, face_operations
from facepipe.api.gallery import GalleryService, gallery_operations
from facepipe.api.operation import Operation
from facepipe.config import Config, FaceConfig, GalleryConfig
from facepipe.edges import face_grpc
from facepipe.edges.docs import docs_routes
from facepipe.edges.grpc import GrpcEdge
from facepipe.edges.http import build_app
from facepipe.edges.observe import Edge
from facepipe.edges.state import ServerState
from facepipe.edges.ui import ui_routes
from facepipe.edges.v1 import v1_route
from facepipe.engine import App, Node
from facepipe.engine.tracer import Tracer
from facepipe.errors import ConfigError
from facepipe.face import pipelines
from facepipe.gallery.backends import open_store
from facepipe.gallery.gallery import Gallery
from facepipe.gallery.pgvector import VectorOptions
from facepipe.models.bundle import Manifest
from facepipe.models.control import ModelControl
from facepipe.models.repository import Repository
from facepipe.server.catalog import ConfigWatch, apply_weights, build_state
from facepipe.server.lifecycle import Component, Server, ServerOptions
from facepipe.server.user_app import AppPart

log = logging.getLogger(__name__)


def face_service(
    config: Config, repo: Repository, state: ServerState, extra: Sequence[Node] = ()
) -> FaceService | None:
    """The /v1 face API over the photo pipelines whose models are installed (None: none is);
    ``extra``: a user's face ops, added to each photo DAG."""
    problem = pipelines.v1_alignment_problem(pipelines.embedder(config, repo))
    if problem:
        log.warning("%s: /v1 is not served (the seed service and KServe are)", problem)
        return None
    detectors = {
        name: pipelines.photos(config, repo, name, extra)
        for name, nets in pipelines.DETECTORS.items()
        if all(repo.versions(n) and repo.permitted(n) for n in nets)
    }
    if not detectors:
        log.warning("no detector models installed: /v1 is not served")
        return None
    crops = state.crops if state.crops is not None else state.seed["ArcFace"].variants
    embedder = pipelines.embedder(config, repo).manifest
    model = {"name": embedder.name, "version": str(embedder.version)}
    spoof = (
        repo.bundle("antispoof").manifest.extra.get("spoof_above", 0.2)
        if repo.versions("antispoof") and repo.permitted("antispoof")
        else None
    )
    if config.face.require_live and spoof is None:
        raise ConfigError(
            "face.require_live: true, but the anti-spoofing model 'antispoof' is not installed or not "
            "permitted (face.pack); run `facepipe models pull` or set face.require_live: false"
        )
    state.extra.extend(detectors.values())
    dim = embedder.embedding_dim or embedder.outputs[0].shape[-1]
    defaults = face_defaults(config, embedder)
    if defaults.detector not in detectors and "detector" not in config.face.model_fields_set:
        # e.g. face.pack: clean refuses MTCNN: the detector that is there becomes the default
        log.info("default detector %s is not available: using %s", defaults.detector, min(detectors))
        defaults = defaults.model_copy(update={"detector": min(detectors)})
    return FaceService(
        detectors, crops, defaults, model, dim, spoof, config.max_body_bytes, budget=state.budget
    )


def face_defaults(config: Config, embedder: Manifest) -> FaceConfig:
    """The face config, with the embedder's own verify threshold (its manifest's ``verify_threshold``)
    unless the config sets one: a threshold measured for one model means nothing for another."""
    own = embedder.extra.get("verify_threshold")
    if own is None or "verify_threshold" in config.face.model_fields_set:
        return config.face
    return config.face.model_copy(update={"verify_threshold": float(own)})


def gallery_defaults(config: Config, embedder: Manifest) -> GalleryConfig:
    """The gallery config, with the embedder's own identify threshold unless the config sets one."""
    own = embedder.extra.get("identify_threshold")
    if own is None or "identify_threshold" in config.gallery.model_fields_set:
        return config.gallery
    return config.gallery.model_copy(update={"identify_threshold": float(own)})


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
    vectors = None
    if g.index == "pgvector":
        vectors = VectorOptions(faces.dim, g.pgvector_m, g.pgvector_ef_construction, g.pgvector_ef_search)
    store = open_store(g.store_url(), data_dir, g.pg_erase, vectors)
    gallery = Gallery(store, model, faces.dim, g.index, **options)
    gallery.load()  # GalleryService's collections follow the store's log for it and every collection
    return gallery


@dataclass(slots=True)
class ControlPart:
    """Model control as a server component: loads every model's versions at start (self-tested),
    then polls the repository (and the config file's A/B weights) if asked to."""

    control: ModelControl
    state: ServerState
    config: Config
    watch: ConfigWatch

    async def start(self) -> None:
        for model in sorted(self.control.models()):
            await self.control.sync(model)
        apply_weights(self.config, self.state)
        self.watch()
        self.control.on_poll = self.watch
        await self.control.start()

    async def stop(self, grace_s: float) -> None:
        await self.control.stop(grace_s)


def build_server(
    config: Config,
    models_dir: Path,
    data_dir: Path,
    on_started: Any = None,
    config_path: Path | None = None,
    sock: socket.socket | None = None,
    worker: int = 0,
    user_app: App | None = None,
) -> Server:
    """One whole server; ``sock``/``worker``: one of ``worker_num`` processes sharing a socket;
    ``user_app``: a user's services (``facepipe serve --app``), served beside the built-ins."""
    # images are already spread over the cores by worker threads and processes: OpenCV's own pool
    # on top of them (one thread per core, per process) only adds hand-offs
    cv2.setNumThreads(config.face.opencv_threads or -1)
    repo = Repository(models_dir, clean=config.face.pack == "clean")
    user = AppPart.of(user_app, config, repo) if user_app is not None else None
    state = build_state(config, repo, user)
    keys = ApiKeys.from_config(config.auth)
    state.authorize = lambda key: keys.check(key, "write")
    state.key_role = keys.role
    state.authorize_inference = keys.check_inference
    control = state.control
    if control is None:  # pragma: no cover - build_state always makes one
        raise RuntimeError("no model control")
    faces = face_service(config, repo, state, user_app.face_ops if user_app is not None else ())
    if faces is not None:
        faces.authorize = keys.check_inference
    ops: list[Operation] = face_operations(faces) if faces is not None else []
    parts: list[Component] = [ControlPart(control, state, config, ConfigWatch(config_path, state))]
    if user is not None:
        parts.append(user)
    if faces is not None and config.gallery.enabled:
        gallery = open_gallery(config, faces, data_dir)
        state.checks.append(gallery.write_problem)  # readiness false while the store cannot write
        gallery_cfg = gallery_defaults(config, pipelines.embedder(config, repo).manifest)
        service = GalleryService(gallery, faces, keys, gallery_cfg, config.enrol)
        ops += gallery_operations(service) + collection_operations(service)
        parts.append(GalleryPart(gallery))
    if config.tracing.enabled:  # OpenTelemetry is imported only then
        from facepipe.server.tracing import tracing_part

        tracing = tracing_part(config.tracing, __version__)
        if tracing is not None:
            parts.append(tracing)  # stopped last: flushes what the others traced while stopping
    edge = Edge(state.metrics)  # every handler of both transports goes through it
    routes = [v1_route(op, edge, config.max_body_bytes) for op in ops]
    routes += [*docs_routes(edge), *ui_routes(state, edge)]
    app = build_app(state, edge, routes, server_version=__version__)
    grpc_face = face_grpc.methods(ops, edge) if ops else None
    parts.insert(1, GrpcEdge(state, edge, config.host, config.rpc_port, __version__, grpc_face))
    name = "pipeline.tracer" + (f".{worker}" if worker else "")
    t = config.dag.tracer
    tracer = Tracer(Path(config.log_dir) / name, t.interval_s, state.pipelines, t.max_bytes, t.backups)
    urls = served_urls(config, state, [op.path for op in ops], grpc_face is not None)
    options = ServerOptions(config.host, config.http_port, sock=sock, urls=urls)
    return Server(state, app, options, tracer, parts, on_started)


def served_urls(config: Config, state: ServerState, v1: list[str], face_grpc: bool) -> tuple[str, ...]:
    """Every URL the server answers, for the start-up log (what a new user looks for first)."""
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    base, rpc = f"http://{host}:{config.http_port}", f"{host}:{config.rpc_port}"
    seed = ", ".join(f"{base}/{name}/prediction" for name in sorted(state.seed))
    lines = [
        f"API docs (Swagger UI): {base}/docs   OpenAPI: {base}/openapi.json",
        f"seed pipeline (HTTP): {seed}",
        f"KServe v2: {base}/v2/models/{{{', '.join(sorted(state.models))}}}[/infer]   index: "
        f"POST {base}/v2/repository/index",
    ]
    if v1:
        lines.append(f"face API: {base} " + " ".join(dict.fromkeys(v1)))
    lines += [
        f"gRPC on {rpc}: seed PipelineService, KServe GRPCInferenceService"
        + (", facepipe.v1.Face" if face_grpc else ""),
        f"operations: {base}/healthz {base}/readyz {base}/metrics",
    ]
    return tuple(lines)
