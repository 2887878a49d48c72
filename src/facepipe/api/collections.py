"""``/v1/collections``: list, create, read, retune and delete gallery collections (a server admin key:
the config's ``auth.api_keys``), and their gRPC twins (``Collections*``, the name in ``collection``).

Creating a collection answers its admin and read keys, once: the store keeps only their digests.
Deleting one erases its subjects, faces and crops from the store's files before it answers.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from facepipe.api.gallery import GalleryService, gallery_operations
from facepipe.api.operation import Answer, Inputs, Operation
from facepipe.errors import InvalidInput
from facepipe.gallery.collections import Info

BASE = "/v1/collections"


def collection_json(svc: GalleryService, info: Info) -> dict[str, Any]:
    """A collection (``threshold``: what identify uses when a request names none)."""
    threshold = svc.config.identify_threshold if info.threshold is None else info.threshold
    return {
        "name": info.name,
        "threshold": threshold,
        "index": info.index,
        "created": info.created,
        "subjects": info.subjects,
        "faces": info.faces,
    }


def _threshold(doc: dict[str, Any]) -> float | None:
    value = doc.get("threshold")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1 <= value <= 1:
        raise InvalidInput("threshold: expected a number from -1 to 1, or null for the server's")
    return float(value)


def _name(inputs: Inputs) -> str:
    name = inputs.path.get("collection") or ""
    if not name:
        raise InvalidInput("collection: expected a collection name")
    return name


async def list_collections(svc: GalleryService, inputs: Inputs) -> Answer:
    svc.keys.check_server(inputs.api_key)
    c = svc.collections
    infos = await asyncio.to_thread(lambda: [c.info(n) for n in c.names()])
    return {"collections": [collection_json(svc, i) for i in infos]}


async def create_collection(svc: GalleryService, inputs: Inputs) -> Answer:
    svc.keys.check_server(inputs.api_key)
    doc = inputs.params
    name, index = doc.get("name"), doc.get("index")
    if not isinstance(name, str):
        raise InvalidInput("name: expected a string")
    if index is not None and not isinstance(index, str):
        raise InvalidInput("index: expected exact, ivf or hnsw")
    _, keys = await svc.collections.create(name, _threshold(doc), index)
    info = await asyncio.to_thread(svc.collections.info, name)
    return collection_json(svc, info) | {"keys": dict(keys)}


async def get_collection(svc: GalleryService, inputs: Inputs) -> Answer:
    svc.keys.check_server(inputs.api_key)
    return collection_json(svc, await asyncio.to_thread(svc.collections.info, _name(inputs)))


async def update_collection(svc: GalleryService, inputs: Inputs) -> Answer:
    svc.keys.check_server(inputs.api_key)
    if "threshold" not in inputs.params:
        raise InvalidInput("threshold: expected a number from -1 to 1, or null for the server's")
    name = _name(inputs)
    await svc.collections.set_threshold(name, _threshold(inputs.params))
    return collection_json(svc, await asyncio.to_thread(svc.collections.info, name))


async def delete_collection(svc: GalleryService, inputs: Inputs) -> Answer:
    svc.keys.check_server(inputs.api_key)
    name = _name(inputs)
    subjects, faces = await svc.collections.delete(name)
    return {"deleted": name, "subjects": subjects, "faces": faces}


def collection_operations(svc: GalleryService) -> list[Operation]:
    """The /v1/collections routes, and every gallery route again under /v1/collections/{name}."""
    one = BASE + "/{collection}"
    table = [
        ("collections_list", "GET", BASE, list_collections, 200),
        ("collections_create", "POST", BASE, create_collection, 201),
        ("collections_get", "GET", one, get_collection, 200),
        ("collections_update", "PATCH", one, update_collection, 200),
        ("collections_delete", "DELETE", one, delete_collection, 200),
    ]
    ops = [
        Operation(name, method, path, partial(fn, svc), status) for name, method, path, fn, status in table
    ]
    scoped = [  # HTTP only: over gRPC the gallery methods take FaceRequest.collection
        Operation("collection_" + op.name, op.method, one + op.path[3:], op.handler, op.status, rpc=False)
        for op in gallery_operations(svc)
    ]
    return ops + scoped
