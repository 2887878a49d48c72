"""Copying a gallery between stores, and into or out of an archive (``archive.py``), idempotently.

What moves is a stream of ``Batch`` es: subjects (by id) first, then faces (by id), each face with
its embedding, the model name and version that made it, and its crop. ``apply`` writes one batch
into a store in one write transaction (so the change log records it and running servers follow):
a subject whose id the store has is kept as it is, a face whose (subject, image sha256, model) the
store has is skipped, as enrolment does; so applying the same batch twice changes nothing.

``migrate`` goes store to store in such batches and records, after each one, how far it got in a
cursor file: a run that stops (crash, Ctrl-C) resumes after the last committed batch; a batch
committed but not yet recorded is applied again and changes nothing.

Collections: every subject and face moves with its collection (``migrate`` copies the collections,
their settings and key digests first); a batch with ``collection`` set puts everything into that one
collection instead (importing an archive into a named collection), which must exist in the target.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from facepipe.errors import Conflict, InvalidInput, NotFound
from facepipe.gallery import collection_store, writes
from facepipe.gallery.records import Collection, FaceRecord, NewFace, Subject, subject_key
from facepipe.gallery.store import Store, Tx

log = logging.getLogger(__name__)
Model = tuple[str, str]


@dataclass(slots=True)
class FaceDump:
    """One face as it moves: its record (ids of the source), embedding and crop."""

    record: FaceRecord
    embedding: np.ndarray  # float32
    crop: bytes | None

    @property
    def model(self) -> Model:
        return self.record.model, self.record.model_version


@dataclass(slots=True)
class Batch:
    subjects: list[Subject] = field(default_factory=list)
    faces: list[FaceDump] = field(default_factory=list)
    collection: str | None = None  # everything into this collection (None: each into its own)


@dataclass(slots=True)
class Tally:
    """What applying batches did."""

    subjects: int = 0  # created
    subjects_kept: int = 0  # already there (kept as they were)
    faces: int = 0  # created
    faces_kept: int = 0  # already there

    def add(self, other: Tally) -> None:
        for k in ("subjects", "subjects_kept", "faces", "faces_kept"):
            setattr(self, k, getattr(self, k) + getattr(other, k))


def subject_batches(
    store: Store, batch: int, after: str = "", collection: str | None = None
) -> Iterator[list[Subject]]:
    """Subjects by key (of ``collection``; None: of every collection), a batch at a time."""
    while page := store.subjects_after(after, batch, collection):
        after = page[-1].key
        yield page


def face_batches(
    store: Store, batch: int, after: int = 0, collection: str | None = None
) -> Iterator[list[FaceDump]]:
    while rows := store.dump_faces(after, batch, collection):
        after = rows[-1][0].id
        yield [FaceDump(rec, np.frombuffer(emb, np.float32), crop) for rec, emb, crop in rows]


def models_of(store: Store) -> dict[Model, int]:
    """Model -> embedding dimension, of every model whose faces the store holds."""
    return {m: next(store.embeddings(m, chunk=1, collection=None))[2].shape[1] for m in store.model_counts()}


def check_models(target: Store, models: dict[Model, int]) -> None:
    """Refuse embeddings (model -> dimension) that cannot live beside the target's: a target that
    holds faces holds them for its serving model; faces of another model could not be searched."""
    held = set(target.model_counts())
    for model, dim in models.items():
        if held and model not in held:
            have = ", ".join(f"{m}/{v}" for m, v in sorted(held))
            raise Conflict(
                f"the embeddings were made by {model[0]}/{model[1]}; the target store holds faces of "
                f"{have}: import into a store of the same model (or an empty one), then reembed"
            )
        if model in held:
            _, _, vecs = next(target.embeddings(model, chunk=1, collection=None))
            if vecs.shape[1] != dim:
                raise Conflict(
                    f"{model[0]}/{model[1]}: embeddings of {dim} values, the store has {vecs.shape[1]}"
                )


def apply(target: Store, batch: Batch) -> Tally:
    """Write ``batch`` into ``target`` in one transaction, skipping what it holds already."""
    return target.write(lambda tx: _apply(tx, batch))


def _apply(tx: Tx, batch: Batch) -> Tally:
    tally = Tally()
    for s in batch.subjects:
        col = _into(tx, batch.collection or s.collection)
        if writes.has_subject(tx, subject_key(col, s.id)):
            tally.subjects_kept += 1
        else:
            writes.insert_subject(tx, s.id, s.name, s.metadata, s.created, col)
            tally.subjects += 1
    for f in batch.faces:
        rec = f.record
        key = subject_key(batch.collection or rec.collection, rec.subject_id)
        if not writes.has_subject(tx, key):
            raise InvalidInput(
                f"face {rec.id}: subject {rec.subject_id!r} is neither in the source nor the store"
            )
        if writes.has_face(tx, key, rec.image_sha256, f.model):
            tally.faces_kept += 1
            continue
        new = NewFace(f.embedding, rec.image_sha256, f.crop, rec.quality)
        writes.insert_face(tx, key, f.model, new, rec.created)
        tally.faces += 1
    return tally


def _into(tx: Tx, collection: str) -> str:
    if not collection_store.exists(tx, collection):
        raise NotFound(
            f"collection {collection!r} is not in the target store: create it first "
            f"(facepipe gallery collections create {collection}), or import into another"
        )
    return collection


def copy_collections(source: Store, target: Store) -> int:
    """Copy the collections the target lacks, with their settings and key digests (so their keys
    keep working): how many were copied."""
    made, digests = 0, collection_store.keys(source)
    for c in collection_store.collections(source):
        keys = [(d, str(r)) for d, (col, r) in digests.items() if col == c.name]

        def insert(tx: Tx, c: Collection = c, keys: list[tuple[str, str]] = keys) -> int:
            if collection_store.exists(tx, c.name):
                return 0  # the target's own settings and keys win
            collection_store.copy(tx, c, keys)
            return 1

        made += target.write(insert)
    return made


@dataclass(slots=True)
class Cursor:
    """How far a migration from ``source`` to ``target`` got (both named without passwords)."""

    source: str
    target: str
    subjects_after: str = ""
    faces_after: int = 0
    done: bool = False

    @classmethod
    def load(cls, path: Path, source: str, target: str) -> Cursor:
        """The cursor at ``path`` if it is of this source and target, else a fresh one."""
        try:
            cur = cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return cls(source, target)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"{path}: not a migration cursor ({exc}); delete it to start over") from None
        if (cur.source, cur.target) != (source, target):
            log.warning("%s is the cursor of %s -> %s: starting over", path, cur.source, cur.target)
            return cls(source, target)
        return cur

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)  # a crash leaves the old cursor or the new one, never half of one


def migrate(
    source: Store,
    target: Store,
    cursor: Cursor,
    cursor_path: Path,
    batch: int = 500,
    progress: Callable[[int], object] = lambda n: None,
) -> Tally:
    """Copy every subject, then every face, of ``source`` into ``target`` from where ``cursor`` is,
    saving the cursor after each committed batch; ``progress`` gets the rows each batch moved."""
    tally = Tally()
    check_models(target, models_of(source))
    copy_collections(source, target)
    for subjects in subject_batches(source, batch, cursor.subjects_after):
        tally.add(apply(target, Batch(subjects=subjects)))
        cursor.subjects_after = subjects[-1].key
        cursor.save(cursor_path)
        progress(len(subjects))
    for faces in face_batches(source, batch, cursor.faces_after):
        tally.add(apply(target, Batch(subjects=_missing(source, target, faces), faces=faces)))
        cursor.faces_after = faces[-1].record.id
        cursor.save(cursor_path)
        progress(len(faces))
    cursor.done = True
    cursor.save(cursor_path)
    return tally


def _missing(source: Store, target: Store, faces: list[FaceDump]) -> list[Subject]:
    """Subjects of ``faces`` the target lacks (made in the source after the subjects were copied)."""
    keys = {f.record.subject_key for f in faces}
    found = (source.subject(key) for key in keys if target.name(key) is None)
    return [s for s in found if s is not None]


def remaining(source: Store, cursor: Cursor) -> int:
    """Rows (subjects + faces) left after ``cursor`` (for a progress bar's total)."""
    return source.count_after(cursor.subjects_after, cursor.faces_after)
