"""Re-embedding from stored crops with the current model, resumable, crops-less faces left alone."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facepipe.api.reembed import Reembedder
from facepipe.gallery import writes
from facepipe.gallery.gallery import Gallery
from facepipe.gallery.sqlite_store import SqliteStore
from facepipe.gallery.store import NewFace


def test_reembed_moves_every_face_with_a_crop_to_the_current_model(
    models_dir: Path, lfw_dir: Path, tmp_path: Path
) -> None:
    images = sorted((lfw_dir / "images").glob("*/*.jpg"))[:5]
    crops = [cv2.resize(cv2.imread(str(p)), (112, 112)) for p in images]
    store = SqliteStore(tmp_path / "gallery.db")
    store.write(lambda db: writes.insert_subject(db, "ann", "Ann", {}))
    old = ("mobilefacenet", "0")
    for i, crop in enumerate(crops):
        png = cv2.imencode(".png", crop)[1].tobytes()
        face = NewFace(np.eye(192, dtype=np.float32)[i], f"sha{i}", png)
        store.write(lambda db, f=face: writes.insert_face(db, "ann", old, f))
    store.write(lambda db: writes.insert_face(db, "ann", old, NewFace(np.ones(192, np.float32), "x", None)))
    store.close()

    job = Reembedder.open(None, models_dir, tmp_path)
    assert job.pending() == 6
    calls: list[int] = []
    assert job.run(batch=2, progress=calls.append) == (5, 1)
    assert sum(calls) == 6 and job.pending() == 1  # the crop-less face stays as it was

    expected = job.embed([cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in crops])
    ids, _, vecs = next(job.store.embeddings(job.model))
    assert ids.tolist() == [1, 2, 3, 4, 5]
    assert np.allclose(vecs, np.stack(expected), atol=1e-5)
    assert job.run(batch=2) == (0, 1)  # nothing left to do: a rerun is a no-op

    gallery = Gallery.open(SqliteStore(tmp_path / "gallery.db"), job.model, 192)
    with pytest.raises(Exception, match="reembed"):
        gallery.check_model()  # the crop-less face still blocks search, and says why
