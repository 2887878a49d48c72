"""The ``/v1/collections`` calls of ``facepipe.client`` (a server admin key), shared by both clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from facepipe.client.calls import Call

BASE = "/v1/collections"


@dataclass(slots=True)
class CollectionInfo:
    name: str
    threshold: float  # identify's threshold when a request names none
    index: str
    created: float
    subjects: int
    faces: int
    keys: dict[str, str] = field(default_factory=dict)  # admin and read: only when just created


def _info(doc: dict[str, Any]) -> CollectionInfo:
    return CollectionInfo(
        str(doc["name"]),
        float(doc["threshold"]),
        str(doc["index"]),
        float(doc["created"]),
        int(doc["subjects"]),
        int(doc["faces"]),
        dict(doc.get("keys", {})),
    )


def _one(name: str) -> str:
    return f"{BASE}/{quote(name, safe='')}"


def collections() -> Call[list[CollectionInfo]]:
    return Call("GET", BASE, lambda doc: [_info(c) for c in doc["collections"]], rpc="CollectionsList")


def create_collection(
    name: str, threshold: float | None = None, index: str | None = None
) -> Call[CollectionInfo]:
    body = {k: v for k, v in {"name": name, "threshold": threshold, "index": index}.items() if v is not None}
    return Call("POST", BASE, _info, json=body, rpc="CollectionsCreate")


def collection(name: str) -> Call[CollectionInfo]:
    return Call("GET", _one(name), _info, rpc="CollectionsGet", collection=name)


def update_collection(name: str, threshold: float | None) -> Call[CollectionInfo]:
    """``threshold`` None: the server's ``gallery.identify_threshold`` again."""
    body = {"threshold": threshold}
    return Call("PATCH", _one(name), _info, json=body, rpc="CollectionsUpdate", collection=name)


def delete_collection(name: str) -> Call[tuple[int, int]]:
    """(subjects, faces) deleted with the collection."""

    def parse(doc: dict[str, Any]) -> tuple[int, int]:
        return int(doc["subjects"]), int(doc["faces"])

    return Call("DELETE", _one(name), parse, rpc="CollectionsDelete", collection=name)
