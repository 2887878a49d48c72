"""The gallery's records: what the store gives back and what it takes in.

A subject's *key* (``subjects.id`` in the store) is its id in the default collection and
``<collection>/<id>`` in any other: ids are unique per collection, and faces refer to subjects by key.
Collection names and subject ids cannot contain ``/``, so keys never collide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT = "default"  # the collection of /v1/subjects and /v1/identify


def subject_key(collection: str, sid: str) -> str:
    return sid if collection == DEFAULT else f"{collection}/{sid}"


def split_key(key: str) -> tuple[str, str]:
    """(collection, subject id) of a subject key."""
    collection, sep, sid = key.partition("/")
    return (collection, sid) if sep else (DEFAULT, key)


@dataclass(slots=True)
class Subject:
    id: str
    name: str
    metadata: dict[str, Any]
    created: float
    faces: int = 0
    collection: str = DEFAULT

    @property
    def key(self) -> str:
        return subject_key(self.collection, self.id)


@dataclass(slots=True)
class FaceRecord:
    id: int
    subject_id: str
    model: str
    model_version: str
    image_sha256: str
    quality: dict[str, Any]
    created: float
    has_crop: bool
    collection: str = DEFAULT

    @property
    def subject_key(self) -> str:
        return subject_key(self.collection, self.subject_id)


@dataclass(slots=True)
class NewFace:
    embedding: np.ndarray  # float32, L2-normalised
    image_sha256: str
    crop_png: bytes | None
    quality: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Collection:
    """A gallery of its own in the store: ``threshold``/``index`` None take the server's config."""

    name: str
    threshold: float | None
    index: str | None
    created: float
