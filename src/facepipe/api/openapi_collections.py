"""The OpenAPI paths and schemas of gallery collections: ``/v1/collections`` (server admin key) and
every gallery route again under ``/v1/collections/{collection}``."""

from __future__ import annotations

import copy
from typing import Any

from facepipe.api.openapi import WRITE, Op, json_content, op, param
from facepipe.api.openapi_schemas import INT, NUM, STR, Schema, array, obj, ref

_NAME = param("collection", "string", "Collection name ('default': the /v1/subjects gallery).", "path")
_KINDS = {"type": "string", "enum": ["exact", "ivf", "hnsw"]}


def collection_schemas() -> dict[str, Schema]:
    threshold = {**NUM, "minimum": -1, "maximum": 1, "nullable": True}
    one = obj(
        ("name", "threshold", "index", "created", "subjects", "faces"),
        name=STR,
        threshold={**NUM, "description": "identify's threshold when a request names none"},
        index=STR,
        created={**NUM, "description": "unix time (0: the default collection)"},
        subjects=INT,
        faces=INT,
    )
    keys = obj(("admin", "read"), admin=STR, read=STR)
    created = copy.deepcopy(one)
    created["properties"]["keys"] = {**keys, "description": "the collection's keys, shown this once"}
    created["required"] = [*created["required"], "keys"]
    return {
        "Collection": one,
        "CollectionCreated": created,
        "CollectionList": obj(("collections",), collections=array(ref("Collection"))),
        "NewCollection": obj(
            ("name",),
            name={**STR, "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
            threshold={**threshold, "description": "null or absent: gallery.identify_threshold"},
            index={**_KINDS, "description": "absent: gallery.index"},
        ),
        "CollectionUpdate": obj(("threshold",), threshold=threshold),
        "CollectionDeleted": obj(("deleted", "subjects", "faces"), deleted=STR, subjects=INT, faces=INT),
    }


def _scoped(path_ops: dict[str, Op]) -> dict[str, Op]:
    out = {}
    for method, given in path_ops.items():
        o = copy.deepcopy(given)
        o["parameters"] = [_NAME, *o.get("parameters", [])]
        o["summary"] += " (in one collection)"
        errors = o["responses"]
        errors.setdefault("404", {"$ref": "#/components/responses/NotFound"})
        out[method] = o
    return out


def collection_paths(gallery: dict[str, dict[str, Op]]) -> dict[str, dict[str, Op]]:
    """The collection routes, and each of ``gallery``'s /v1 paths under /v1/collections/{name}."""

    def admin(summary: str, answer: Any, errors: str, **kw: Any) -> Op:
        return op(summary, answer, errors, tag="collections", security=WRITE, **kw)

    base, one = "/v1/collections", "/v1/collections/{collection}"
    out: dict[str, dict[str, Op]] = {
        base: {
            "get": admin("Every collection", ref("CollectionList"), "401 403"),
            "post": admin(
                "Create a collection; answers its admin and read keys, once",
                ref("CollectionCreated"),
                "400 401 403 409",
                body=json_content(ref("NewCollection")),
                status="201",
            ),
        },
        one: {
            "get": admin("A collection", ref("Collection"), "401 403 404", params=[_NAME]),
            "patch": admin(
                "Set a collection's identify threshold",
                ref("Collection"),
                "400 401 403 404",
                params=[_NAME],
                body=json_content(ref("CollectionUpdate")),
            ),
            "delete": admin(
                "Delete a collection: its subjects, faces and crops are erased from the store's files",
                ref("CollectionDeleted"),
                "400 401 403 404",
                params=[_NAME],
            ),
        },
    }
    for path, path_ops in gallery.items():
        out[one + path[3:]] = _scoped(path_ops)
    return out
