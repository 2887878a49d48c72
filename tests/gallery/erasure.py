"""Shared by the erasure tests of both backends: faces with distinctive crops, and a scan of every
file under a directory for their bytes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facepipe.gallery.store import NewFace

DIM = 16


def marked_face(seed: int, crop_bytes: int = 30_000) -> NewFace:
    """A face whose crop (random, incompressible, bigger than a page) and embedding occur nowhere else."""
    rng = np.random.default_rng([seed, 0xFACE])  # a stream no other test draws its vectors from
    v = rng.standard_normal(DIM).astype(np.float32)
    return NewFace(v / np.linalg.norm(v), f"sha{seed}", rng.bytes(crop_bytes))


def needles(face: NewFace) -> list[bytes]:
    """What must not survive a delete: a 64-byte run from the crop's middle, and the embedding."""
    crop = face.crop_png or b""
    return [crop[len(crop) // 2 : len(crop) // 2 + 64], face.embedding.astype(np.float32).tobytes()]


def files_holding(root: Path, needle: bytes, skip: tuple[str, ...] = ()) -> list[str]:
    """Every file under ``root`` (but the ``skip`` folders) whose bytes contain ``needle``."""
    hits = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            path = Path(folder) / name
            try:
                if needle in path.read_bytes():
                    hits.append(str(path.relative_to(root)))
            except (FileNotFoundError, PermissionError):  # a file removed while we scan is not there
                continue
    return hits
