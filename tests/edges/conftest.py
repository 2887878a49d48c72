"""An in-process app with the real edges and the real face/gallery operations over a real SQLite
gallery, no models: every route's input handling, auth and error forms, without starting a server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from facepipe.api.auth import ApiKeys
from facepipe.api.collections import collection_operations
from facepipe.api.face import FaceService, face_operations
from facepipe.api.gallery import GalleryService, gallery_operations
from facepipe.api.limits import PixelBudget
from facepipe.api.operation import Inputs, Operation
from facepipe.config import FaceConfig, GalleryConfig
from facepipe.edges.docs import docs_routes
from facepipe.edges.http import build_app
from facepipe.edges.observe import Edge
from facepipe.edges.state import ServerState
from facepipe.edges.v1 import v1_route
from facepipe.gallery.gallery import Gallery
from facepipe.gallery.sqlite_store import SqliteStore
from facepipe.models.versions import Versions

DIM = 4
LIMIT = 256 * 1024  # max_body_bytes of the test app
ADMIN = "admin-key-0123456789"


async def echo(inputs: Inputs) -> dict[str, Any]:
    """What the edge read: image sizes, parameters, embeddings."""
    return {
        "images": [len(b) for b in inputs.images],
        "params": inputs.params,
        "embeddings": inputs.embeddings,
    }


@dataclass
class App:
    app: Starlette
    client: TestClient
    state: ServerState
    gallery: Gallery
    faces: FaceService
    ops: list[Operation] = field(default_factory=list)
    service: GalleryService | None = None


def make_app(tmp_path: Path, keys: ApiKeys | None = None) -> App:
    keys = keys or ApiKeys([ADMIN.encode()], [])
    crops: Versions[Any] = Versions("ArcFace")  # none loaded: aligned-crop embedding answers 404
    faces = FaceService({}, crops, FaceConfig(), {"name": "m", "version": "1"}, DIM, None, LIMIT)
    faces.authorize = keys.check_inference
    faces.budget = PixelBudget(1000, 2000)
    gallery = Gallery.open(SqliteStore(tmp_path / "g.db"), ("m", "1"), DIM)
    svc = GalleryService(gallery, faces, keys, GalleryConfig())
    ops = face_operations(faces) + gallery_operations(svc) + collection_operations(svc)
    ops.append(Operation("echo", "POST", "/echo", echo))
    state = ServerState({}, {}, max_body_bytes=LIMIT)
    state.authorize_inference = keys.check_inference
    edge = Edge(state.metrics)
    routes = [v1_route(op, edge, LIMIT) for op in ops]
    app = build_app(state, edge, [*routes, *docs_routes(edge)])
    return App(app, TestClient(app, raise_server_exceptions=False), state, gallery, faces, ops, svc)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[App]:
    a = make_app(tmp_path)
    yield a
    a.gallery.close()
