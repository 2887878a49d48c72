"""The ``/v1/collections`` calls of ``facepipe.client`` (a server admin key), and the methods both
clients get from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from facepipe.client.calls import Call

BASE = "/v1/collections"
T = TypeVar("T")


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


class CollectionMethods:
    """``Client``'s collection methods (with a server admin key)."""

    def _do(self, call: Call[T]) -> T:
        raise NotImplementedError

    def collections(self) -> list[CollectionInfo]:
        return self._do(collections())

    def create_collection(
        self, name: str, threshold: float | None = None, index: str | None = None
    ) -> CollectionInfo:
        """A new collection; its ``keys`` (admin, read) are shown this once."""
        return self._do(create_collection(name, threshold, index))

    def collection(self, name: str) -> CollectionInfo:
        return self._do(collection(name))

    def update_collection(self, name: str, threshold: float | None) -> CollectionInfo:
        return self._do(update_collection(name, threshold))

    def delete_collection(self, name: str) -> tuple[int, int]:
        return self._do(delete_collection(name))


class AsyncCollectionMethods:
    """``AsyncClient``'s collection methods (with a server admin key)."""

    async def _do(self, call: Call[T]) -> T:
        raise NotImplementedError

    async def collections(self) -> list[CollectionInfo]:
        return await self._do(collections())

    async def create_collection(
        self, name: str, threshold: float | None = None, index: str | None = None
    ) -> CollectionInfo:
        return await self._do(create_collection(name, threshold, index))

    async def collection(self, name: str) -> CollectionInfo:
        return await self._do(collection(name))

    async def update_collection(self, name: str, threshold: float | None) -> CollectionInfo:
        return await self._do(update_collection(name, threshold))

    async def delete_collection(self, name: str) -> tuple[int, int]:
        return await self._do(delete_collection(name))
