"""Re-embedding: faces of another model version recomputed from their stored crops, in batches.

Resumable by construction: each batch commits on its own, and only faces still of another version are
picked up, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from facepipe.config import Config, load_config
from facepipe.face import pipelines
from facepipe.face.embed import EmbedOp, flip_averaged
from facepipe.gallery import writes
from facepipe.gallery.backends import open_store
from facepipe.gallery.store import Store, Tx
from facepipe.models.repository import Repository
from facepipe.runtime import runtime_spec

log = logging.getLogger(__name__)


def _rgb(png: bytes) -> np.ndarray | None:
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(slots=True)
class Reembedder:
    store: Store
    embed: EmbedOp
    model: tuple[str, str]
    flip: bool = False  # face.flip_average, as /v1 embeds

    @classmethod
    def open(cls, config_path: Path | None, models: Path, data: Path) -> Reembedder:
        config: Config = load_config(config_path)
        bundle = pipelines.embedder(config, Repository(models, clean=config.face.pack == "clean"))
        op = EmbedOp(bundle, runtime_spec(config.op_config("ArcFace")))
        op.setup()
        model = (bundle.manifest.name, str(bundle.manifest.version))
        store = open_store(config.gallery.store_url(), data, config.gallery.pg_erase)
        return cls(store, op, model, config.face.flip_average)

    def _save(self, ids: list[int], embeddings: list[np.ndarray], tx: Tx) -> None:
        for fid, emb in zip(ids, embeddings, strict=True):
            writes.set_embedding(tx, fid, self.model, emb)

    def pending(self) -> int:
        return sum(n for m, n in self.store.model_counts().items() if m != self.model)

    def run(self, batch: int, progress: Callable[[int], None] = lambda _: None) -> tuple[int, int]:
        """(faces re-embedded, faces left because they have no usable crop)."""
        done = skipped = after = 0
        while rows := self.store.stale(self.model, batch, after):
            after = rows[-1][0]
            crops = [(fid, _rgb(png)) for fid, png in rows if png is not None]
            usable = [(fid, img) for fid, img in crops if img is not None]
            skipped += len(rows) - len(usable)
            if usable:
                imgs = [img for _, img in usable]
                embs = flip_averaged(self.embed, imgs) if self.flip else self.embed(imgs)
                self.store.write(partial(self._save, [fid for fid, _ in usable], embs))
                done += len(usable)
            progress(len(rows))
        log.info("re-embedded %d faces with %s/%s; %d without a crop", done, *self.model, skipped)
        return done, skipped
