"""The gallery's operations (``/v1/subjects``, ``/v1/faces``, ``/v1/identify`` and their gRPC twins)
over the face pipeline.

Routes that change the gallery need an admin ``x-api-key``; reading and identifying need a read or
admin key once any key is configured (see ``facepipe.api.auth``). Each operation works on one
collection: the path's ``{collection}`` (``/v1/collections/{collection}/subjects`` ...; gRPC: the
request's ``collection``), else the default one; ``api/collections.py`` manages collections.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np

from facepipe.api import jsondoc
from facepipe.api.auth import ApiKeys
from facepipe.api.enrol import faces_to_enrol
from facepipe.api.face import (
    FaceService,
    face_json,
    gated,
    number,
    request_gate,
    run_photos,
    vector,
)
from facepipe.api.gate import refusal
from facepipe.api.jsondoc import metadata_of
from facepipe.api.operation import Answer, Binary, Inputs, Operation
from facepipe.config import EnrolConfig, GalleryConfig
from facepipe.errors import InvalidInput, NotFound, Unauthorized, UnusableFace
from facepipe.gallery.collections import Collections
from facepipe.gallery.gallery import Gallery
from facepipe.gallery.records import DEFAULT
from facepipe.gallery.store import FaceRecord, Subject
from facepipe.gallery.view import Match

log = logging.getLogger(__name__)


@dataclass(slots=True)
class GalleryService:
    gallery: Gallery  # the default collection's
    faces: FaceService
    keys: ApiKeys
    config: GalleryConfig
    enrol: EnrolConfig = field(default_factory=EnrolConfig)
    collections: Collections = field(init=False)

    def __post_init__(self) -> None:
        self.collections = Collections.open(self.gallery)
        self.keys.collection_role = self.collections.key_role

    async def allow(self, inputs: Inputs, need: Literal["read", "write"]) -> Gallery:
        """The gallery of the request's collection, once its key may ``need`` there (checked first:
        a key of another collection gets 403 whether or not the collection exists). From memory;
        a key or collection this process does not know yet is looked up in the store, off the loop."""
        name = inputs.path.get("collection") or DEFAULT

        def check(look: bool) -> Gallery:
            self.keys.check_collection(inputs.api_key, name, need, name == DEFAULT, look)
            return self.collections.gallery(name, look)

        try:
            return check(False)
        except (Unauthorized, NotFound):
            return await asyncio.to_thread(check, True)

    def threshold(self, inputs: Inputs) -> float:
        """The request's collection's identify threshold (the config's for the default)."""
        own = self.collections.threshold(inputs.path.get("collection") or DEFAULT)
        return self.config.identify_threshold if own is None else own


def subject_json(s: Subject) -> dict[str, Any]:
    meta = s.metadata
    if jsondoc.depth(meta) > jsondoc.MAX_DEPTH:  # stored before metadata was limited: keep reads working
        log.warning(
            "subject %r: stored metadata nests deeper than %d; answered as {}", s.id, jsondoc.MAX_DEPTH
        )
        meta = {}
    return {"id": s.id, "name": s.name, "metadata": meta, "faces": s.faces, "created": s.created}


def record_json(f: FaceRecord) -> dict[str, Any]:
    return {
        "id": f.id,
        "subject": f.subject_id,
        "model": {"name": f.model, "version": f.model_version},
        "image_sha256": f.image_sha256,
        "quality": f.quality,
        "created": f.created,
        "has_crop": f.has_crop,
    }


def match_json(m: Match, threshold: float) -> dict[str, Any]:
    similarity = round(m.similarity, 6)
    return {
        "subject": m.subject_id,
        "name": m.name,
        "similarity": similarity,
        "match": similarity >= threshold,
        "face": m.face_id,
    }


def _name(doc: dict[str, Any], required: bool) -> str | None:
    name = doc.get("name")
    if name is None and not required:
        return None
    if not isinstance(name, str) or not 0 < len(name) <= 256:
        raise InvalidInput("name: expected a string of 1 to 256 characters")
    return name


def _face_id(inputs: Inputs) -> int:
    raw = inputs.path.get("fid", "")
    # ASCII digits only ('²' and Arabic-Indic digits pass str.isdigit), and within SQLite's int64
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise InvalidInput(f"face id must be a number of 1 to 18 digits, got {raw[:40]!r}")
    return int(raw)


async def create_subject(svc: GalleryService, inputs: Inputs) -> Answer:
    gallery = await svc.allow(inputs, "write")
    doc = inputs.params
    sid = doc.get("id")
    if sid is not None and not isinstance(sid, str):
        raise InvalidInput("id: expected a string")
    subject = await gallery.create_subject(sid, _name(doc, True) or "", metadata_of(doc) or {})
    return subject_json(subject)


async def list_subjects(svc: GalleryService, inputs: Inputs) -> Answer:
    gallery = await svc.allow(inputs, "read")
    offset = int(number(inputs.params, "offset", 0, 0, 1 << 62))
    count = int(number(inputs.params, "limit", 100, 1, 1000))
    search = str(inputs.params.get("search", ""))
    if len(search) > 256:
        raise InvalidInput("search: expected at most 256 characters")
    subjects, total = await asyncio.to_thread(gallery.subjects, offset, count, search)
    return {"subjects": [subject_json(s) for s in subjects], "total": total, "offset": offset}


async def get_subject(svc: GalleryService, inputs: Inputs) -> Answer:
    gallery = await svc.allow(inputs, "read")
    return subject_json(await asyncio.to_thread(gallery.subject, inputs.path["sid"]))


async def update_subject(svc: GalleryService, inputs: Inputs) -> Answer:
    gallery = await svc.allow(inputs, "write")
    doc = inputs.params
    subject = await gallery.update_subject(inputs.path["sid"], _name(doc, False), metadata_of(doc))
    return subject_json(subject)


async def delete_subject(svc: GalleryService, inputs: Inputs) -> Answer:
    gallery = await svc.allow(inputs, "write")
    sid = inputs.path["sid"]
    return {"deleted": sid, "faces": await gallery.delete_subject(sid)}


async def enrol(svc: GalleryService, inputs: Inputs) -> Answer:
    gallery = await svc.allow(inputs, "write")
    sid = inputs.path["sid"]
    await asyncio.to_thread(gallery.subject, sid)  # 404 before any detection work
    keep = svc.config.keep_crops
    chosen, skipped = await faces_to_enrol(
        svc.faces, svc.enrol.min_quality, keep, inputs.images, inputs.params
    )
    rows = await gallery.add_faces(sid, [f for _, f in chosen]) if chosen else []
    faces = [
        record_json(rec) | {"image": i, "created": created}
        for (i, _), (rec, created) in zip(chosen, rows, strict=True)
    ]
    return {"subject": sid, "faces": faces, "skipped": skipped}


async def list_faces(svc: GalleryService, inputs: Inputs) -> Answer:
    gallery = await svc.allow(inputs, "read")
    sid = inputs.path["sid"]
    faces = await asyncio.to_thread(gallery.faces_of, sid)
    return {"subject": sid, "faces": [record_json(f) for f in faces]}


async def get_face(svc: GalleryService, inputs: Inputs) -> Answer:
    gallery = await svc.allow(inputs, "read")
    return record_json(await asyncio.to_thread(gallery.face, _face_id(inputs)))


async def delete_face(svc: GalleryService, inputs: Inputs) -> Answer:
    gallery = await svc.allow(inputs, "write")
    fid = _face_id(inputs)
    await gallery.delete_face(fid)
    return {"deleted": fid}


async def face_crop(svc: GalleryService, inputs: Inputs) -> Answer:
    gallery = await svc.allow(inputs, "read")
    fid = _face_id(inputs)
    png = await asyncio.to_thread(gallery.crop, fid)
    if png is None:
        raise InvalidInput(f"face {fid} has no stored crop (gallery.keep_crops was off)")
    return Binary(png, "image/png")


async def identify(svc: GalleryService, inputs: Inputs) -> Answer:
    gallery = await svc.allow(inputs, "read")
    gallery.check_model()
    k, threshold = _search_params(svc, inputs)
    gate = request_gate(svc.faces, inputs.params)
    photos = await run_photos(svc.faces, gated(inputs, gate))
    why = {id(f): refusal(f, gate, svc.faces.spoof_above) for p in photos for f in p.faces}
    if why and all(why.values()):
        raise UnusableFace(f"every face was refused; the first: {next(iter(why.values()))}")
    kept = [f for p in photos for f in p.faces if not why[id(f)]]
    searched = await _search(gallery, [np.asarray(f.embedding) for f in kept], k)
    found = dict(zip(map(id, kept), searched, strict=True))
    results = []
    for i, p in enumerate(photos):
        h, w = p.image.shape[:2]
        out = [face_json(f, svc.faces.spoof_above, False) for f in p.faces]
        for f, face in zip(p.faces, out, strict=True):
            face["matches"] = [match_json(m, threshold) for m in found.get(id(f), [])]
            if why[id(f)]:
                face["refused"] = why[id(f)]
        results.append({"image": i, "width": w, "height": h, "faces": out})
    return {"model": svc.faces.model, "threshold": threshold, "results": results}


async def identify_embeddings(svc: GalleryService, inputs: Inputs) -> Answer:
    gallery = await svc.allow(inputs, "read")
    doc = inputs.params
    model = doc.get("model")
    if model is not None:
        if not isinstance(model, dict) or not {"name", "version"} <= model.keys():
            raise InvalidInput("model: expected {'name': ..., 'version': ...}")
        gallery.check_model((str(model["name"]), str(model["version"])))
    gallery.check_model()
    embs = inputs.embeddings
    if not isinstance(embs, list) or not embs or len(embs) > 1024:
        raise InvalidInput("embeddings: expected a list of 1 to 1024 embeddings")
    k, threshold = _search_params(svc, inputs)
    found = await _search(
        gallery, [vector(e, f"embeddings[{i}]", svc.faces.dim) for i, e in enumerate(embs)], k
    )
    results = [
        {"embedding": i, "matches": [match_json(m, threshold) for m in ms]} for i, ms in enumerate(found)
    ]
    return {"model": svc.faces.model, "threshold": threshold, "results": results}


def gallery_operations(svc: GalleryService) -> list[Operation]:
    subject, faces = "/v1/subjects/{sid}", "/v1/faces/{fid}"
    table = [
        ("subjects_create", "POST", "/v1/subjects", create_subject, 201),
        ("subjects_list", "GET", "/v1/subjects", list_subjects, 200),
        ("subjects_get", "GET", subject, get_subject, 200),
        ("subjects_update", "PATCH", subject, update_subject, 200),
        ("subjects_delete", "DELETE", subject, delete_subject, 200),
        ("faces_enrol", "POST", subject + "/faces", enrol, 201),
        ("faces_list", "GET", subject + "/faces", list_faces, 200),
        ("faces_get", "GET", faces, get_face, 200),
        ("faces_delete", "DELETE", faces, delete_face, 200),
        ("faces_crop", "GET", faces + "/crop", face_crop, 200),
        ("identify", "POST", "/v1/identify", identify, 200),
        ("identify_embeddings", "POST", "/v1/identify/embeddings", identify_embeddings, 200),
    ]
    return [
        Operation(name, method, path, partial(fn, svc), status) for name, method, path, fn, status in table
    ]


def _search_params(svc: GalleryService, inputs: Inputs) -> tuple[int, float]:
    k = int(number(inputs.params, "k", svc.config.top_k, 1, 100))
    return k, number(inputs.params, "threshold", svc.threshold(inputs), -1, 1)


async def _search(g: Gallery, vectors: list[np.ndarray], k: int) -> list[list[Match]]:
    if not vectors:
        return []
    return await asyncio.to_thread(g.identify, np.stack(vectors), k)
