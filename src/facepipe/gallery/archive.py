"""The portable gallery archive: a tar (``.tar``, or gzip-compressed ``.tar.gz``/``.tgz``) whose
members come in this order, so that both export and import stream it (docs/gallery.md):

- ``gallery.json``: ``{"format": "facepipe-gallery", "version": 1, "exported": <unix time>,
  "collection": <the collection exported, or null: every one>, "models": [{"name", "version", "dim",
  "faces"}]}``
- ``subjects/<n>.jsonl``: one subject a line: ``{"id", "name", "metadata", "created"}``, and
  ``"collection"`` when it is not the default one (faces too)
- per batch of faces: the batch's crops, ``crops/<face id>.png``, then ``faces/<n>.jsonl``: one face
  a line: ``{"id", "subject", "model", "model_version", "image_sha256", "quality", "created",
  "embedding": <base64 of little-endian float32>, "crop": <member name or null>, "crop_sha256"}``
- ``end.json``: ``{"subjects": <count>, "faces": <count>}`` (an archive without it was cut short).

Import writes each members' batch through ``transfer.apply`` (one transaction each, idempotent),
each row into its own collection, or all into the one named by ``into``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from facepipe.errors import Conflict, InvalidInput
from facepipe.gallery.records import DEFAULT, FaceRecord, Subject
from facepipe.gallery.store import Store
from facepipe.gallery.transfer import (
    Batch,
    FaceDump,
    Model,
    Tally,
    apply,
    check_models,
    face_batches,
    models_of,
    subject_batches,
)

FORMAT, VERSION = "facepipe-gallery", 1
HEADER, END = "gallery.json", "end.json"


def _create(path: Path) -> tarfile.TarFile:
    """A tar written front to back (gzip-compressed if the name says so)."""
    if path.name.removesuffix(".part").endswith((".tar.gz", ".tgz")):
        return tarfile.open(str(path), "w|gz")
    return tarfile.open(str(path), "w|")


class _Writer:
    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar, self.now, self.n = tar, time.time(), 0

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), int(self.now), 0o644
        self.tar.addfile(info, io.BytesIO(data))

    def lines(self, folder: str, rows: list[dict[str, Any]]) -> None:
        self.n += 1
        self.add(f"{folder}/{self.n:06d}.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())


def _collection(collection: str) -> dict[str, str]:
    return {} if collection == DEFAULT else {"collection": collection}


def _face_line(f: FaceDump) -> dict[str, Any]:
    r = f.record
    crop = None if f.crop is None else f"crops/{r.id}.png"
    return _collection(r.collection) | {
        "id": r.id,
        "subject": r.subject_id,
        "model": r.model,
        "model_version": r.model_version,
        "image_sha256": r.image_sha256,
        "quality": r.quality,
        "created": r.created,
        "embedding": base64.b64encode(np.ascontiguousarray(f.embedding, "<f4").tobytes()).decode(),
        "crop": crop,
        "crop_sha256": None if f.crop is None else hashlib.sha256(f.crop).hexdigest(),
    }


def export(
    store: Store,
    path: Path,
    batch: int = 500,
    progress: Callable[[int], object] = lambda n: None,
    collection: str | None = None,
) -> Tally:
    """Write every subject and face of ``store`` (of ``collection``; None: of all) to the archive
    ``path``, a batch at a time."""
    counts = store.model_counts()
    models = [
        {"name": m, "version": v, "dim": d, "faces": counts[m, v]} for (m, v), d in models_of(store).items()
    ]
    header = {
        "format": FORMAT,
        "version": VERSION,
        "exported": time.time(),
        "collection": collection,
        "models": models,
    }
    tally, exported = Tally(), set[str]()
    part = path.with_name(path.name + ".part")  # a failed export leaves no archive that looks whole
    with _create(part) as tar:
        out = _Writer(tar)
        out.add(HEADER, json.dumps(header).encode())
        for subjects in subject_batches(store, batch, collection=collection):
            out.lines("subjects", [_subject_line(s) for s in subjects])
            exported.update(s.key for s in subjects)
            tally.subjects += len(subjects)
            progress(len(subjects))
        for page in face_batches(store, batch, collection=collection):
            faces = [f for f in page if f.record.subject_key in exported]  # not of a subject made since
            for f in faces:
                if f.crop is not None:
                    out.add(f"crops/{f.record.id}.png", f.crop)
            out.lines("faces", [_face_line(f) for f in faces])
            tally.faces += len(faces)
            progress(len(faces))
        out.add(END, json.dumps({"subjects": tally.subjects, "faces": tally.faces}).encode())
    os.replace(part, path)
    return tally


def _header(data: bytes, target: Store, expect: Model | None) -> set[Model]:
    """The models the header lists, once checked against ``target`` and ``expect``."""
    try:
        head = json.loads(data)
        fmt, version = head["format"], int(head["version"])
        models = {(str(m["name"]), str(m["version"])): int(m["dim"]) for m in head["models"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{HEADER}: not a facepipe gallery archive header ({exc})") from None
    if fmt != FORMAT or version > VERSION:
        raise InvalidInput(
            f"{HEADER}: format {fmt!r} version {version}: this facepipe reads {FORMAT} {VERSION}"
        )
    for model in models:
        if expect is not None and model != expect:
            raise Conflict(
                f"the archive's embeddings were made by {model[0]}/{model[1]}, not {expect[0]}/{expect[1]}:"
                " they could not be searched with that model"
            )
    check_models(target, models)
    return set(models)


def _subject_line(s: Subject) -> dict[str, Any]:
    return _collection(s.collection) | {
        "id": s.id,
        "name": s.name,
        "metadata": s.metadata,
        "created": s.created,
    }


def _subject(row: dict[str, Any]) -> Subject:
    collection = str(row.get("collection", DEFAULT))
    return Subject(
        str(row["id"]), str(row["name"]), dict(row["metadata"]), float(row["created"]), 0, collection
    )


def _face(row: dict[str, Any], crops: dict[str, bytes]) -> FaceDump:
    rec = FaceRecord(
        int(row["id"]),
        str(row["subject"]),
        str(row["model"]),
        str(row["model_version"]),
        str(row["image_sha256"]),
        dict(row["quality"]),
        float(row["created"]),
        row["crop"] is not None,
        str(row.get("collection", DEFAULT)),
    )
    emb = np.frombuffer(base64.b64decode(row["embedding"], validate=True), "<f4").astype(np.float32)
    crop = None
    if row["crop"] is not None:
        crop = crops.pop(row["crop"], None)
        if crop is None or hashlib.sha256(crop).hexdigest() != row["crop_sha256"]:
            raise InvalidInput(f"face {rec.id}: crop {row['crop']} is missing or does not match its sha256")
    return FaceDump(rec, emb, crop)


def _rows(name: str, data: bytes) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in data.decode().splitlines() if line]
    except ValueError as exc:
        raise InvalidInput(f"{name}: not JSON lines ({exc})") from None


def _batch(name: str, data: bytes, crops: dict[str, bytes], models: set[Model], into: str | None) -> Batch:
    try:
        if name.startswith("subjects/"):
            return Batch(subjects=[_subject(r) for r in _rows(name, data)], collection=into)
        faces = [_face(r, crops) for r in _rows(name, data)]
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInput(f"{name}: a line lacks or misspells {exc}") from None
    for f in faces:
        if f.model not in models:
            raise InvalidInput(f"{name}: face {f.record.id} of {f.model}, a model the header does not list")
    return Batch(faces=faces, collection=into)


def import_archive(
    path: Path,
    target: Store,
    expect: Model | None = None,
    progress: Callable[[int], object] = lambda n: None,
    into: str | None = None,
) -> Tally:
    """Read the archive ``path`` into ``target``: what it holds already is skipped (re-importing
    changes nothing). ``expect``: refuse embeddings of any other model; ``into``: put everything
    into this collection (None: each subject into the collection it was exported from)."""
    tally, end, crops = Tally(), None, dict[str, bytes]()
    models: set[Model] | None = None
    with tarfile.open(str(path), "r|*") as tar:
        for member in tar:
            data = _read(tar, member)
            if member.name == HEADER:
                models = _header(data, target, expect)
            elif models is None:
                raise InvalidInput(f"{path}: {member.name} comes before the {HEADER} header")
            elif member.name.startswith("crops/"):
                crops[member.name] = data
            elif member.name.startswith(("subjects/", "faces/")):
                batch = _batch(member.name, data, crops, models, into)
                tally.add(apply(target, batch))
                progress(len(batch.subjects) + len(batch.faces))
            elif member.name == END:
                end = json.loads(data)
    if end is None:
        raise InvalidInput(f"{path}: the archive is cut short (no {END}); what it held was imported")
    return tally


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f: IO[bytes] | None = tar.extractfile(member) if member.isfile() else None
    return b"" if f is None else f.read()
