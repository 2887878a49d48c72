"""Every face API operation has its method in the published proto, and the names agree."""

from __future__ import annotations

from pathlib import Path

from facepipe.api.auth import ApiKeys
from facepipe.api.collections import collection_operations
from facepipe.api.face import FaceService, face_operations
from facepipe.api.gallery import GalleryService, gallery_operations
from facepipe.api.operation import rpc_name
from facepipe.config import FaceConfig, GalleryConfig
from facepipe.edges.face_grpc import SERVICE
from facepipe.gallery.gallery import Gallery
from facepipe.gallery.sqlite_store import SqliteStore
from facepipe.protos import face_service_pb2 as pb


def test_every_operation_is_a_method_of_the_proto_service(tmp_path: Path) -> None:
    faces = FaceService({}, None, FaceConfig(), {"name": "m", "version": "1"}, 4, None, 1024)  # type: ignore[arg-type]
    gallery = Gallery.open(SqliteStore(tmp_path / "g.db"), ("m", "1"), 4)
    svc = GalleryService(gallery, faces, ApiKeys([], []), GalleryConfig())
    ops = face_operations(faces) + gallery_operations(svc) + collection_operations(svc)
    service = pb.DESCRIPTOR.services_by_name["Face"]
    assert service.full_name == SERVICE
    assert sorted(rpc_name(op) for op in ops if op.rpc) == sorted(m.name for m in service.methods)
    assert len({(op.method, op.path) for op in ops}) == len(ops)
    gallery.close()
