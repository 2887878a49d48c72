"""Accuracy of a running server, measured through its own API (detection, alignment, embedding).

``lfw(url, dir)``: k-fold verification accuracy, TAR at FAR, AUC and landmark error against the
reference landmarks; ``photo_pairs(url, csv)``: labelled photo pairs decided at the server's threshold;
``identification(url, dir, key)``: 1:N rank-1 and false matches of never-enrolled people.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from facepipe.client import AsyncClient, Match
from facepipe.client.calls import server_error
from facepipe.errors import Conflict, FacepipeError
from facepipe.tools.evaluation import auc, best_threshold, kfold_accuracy, read_lfw_pairs, tar_at_far

POINTS = ("leye", "reye", "nose", "lmouth", "rmouth")


@dataclass(slots=True)
class Embedded:
    embedding: np.ndarray | None  # None: no face found
    landmarks: np.ndarray | None


def pick_face(result: dict[str, Any], rule: str) -> dict[str, Any] | None:
    """One face of a ``/v1/embed`` result: the first (largest) one, or with ``rule="centre"`` the one
    nearest the image centre (LFW's subject: every LFW image is a crop centred on the named person,
    and 11 % of lfw-dev's images show someone else too, sometimes larger)."""
    faces: list[dict[str, Any]] = result["faces"]
    if not faces or rule == "largest":
        return faces[0] if faces else None
    cx, cy = result["width"] / 2, result["height"] / 2

    def off_centre(face: dict[str, Any]) -> float:
        b = face["box"]
        return float(np.hypot((b["x1"] + b["x2"]) / 2 - cx, (b["y1"] + b["y2"]) / 2 - cy))

    return min(faces, key=off_centre)


async def embed_files(
    url: str,
    files: list[Path],
    concurrency: int = 8,
    timeout: float = 120,
    detector: str = "mtcnn",
    pick: str = "largest",
    progress: Callable[[int], Any] = lambda _: None,
) -> list[Embedded]:
    """One face of each image (``pick_face``) through ``POST /v1/embed`` (raw body), ``concurrency``
    at a time; ``progress(1)`` after each image."""
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:

        async def one(path: Path) -> Embedded:
            async with sem:
                r = await client.post(
                    "/v1/embed",
                    params={"max_faces": 1 if pick == "largest" else 0, "detector": detector},
                    content=path.read_bytes(),
                    headers={"content-type": "image/jpeg"},
                )
            if r.status_code >= 400:
                raise server_error(r.status_code, r.json() if r.content[:1] == b"{" else r.text)
            progress(1)
            face = pick_face(r.json()["results"][0], pick)
            if face is None:
                return Embedded(None, None)
            return Embedded(np.asarray(face["embedding"], np.float32), np.asarray(face["landmarks"]))

        return list(await asyncio.gather(*(one(f) for f in files)))


def server_threshold(url: str, dim: int) -> float:
    """The server's default verify threshold: asked with two equal unit embeddings of the model's size
    (the server refuses embeddings of another size)."""
    unit = [1.0] + [0.0] * (dim - 1)
    r = httpx.post(url + "/v1/verify", json={"embeddings": [unit, unit]}, timeout=30)
    r.raise_for_status()
    return float(r.json()["threshold"])


def reference_landmarks(path: Path) -> dict[str, np.ndarray]:
    with path.open() as fh:
        rows = csv.DictReader(fh, delimiter="\t")
        return {r["file"]: np.array([[float(r[f"{p}_x"]), float(r[f"{p}_y"])] for p in POINTS]) for r in rows}


def lfw_images(lfw_dir: Path) -> int:
    """How many distinct images the pairs file names (what ``lfw`` embeds)."""
    pairs = read_lfw_pairs(lfw_dir / "pairs.txt")
    return len({p.left for p in pairs} | {p.right for p in pairs})


def lfw(
    url: str,
    lfw_dir: Path,
    concurrency: int = 8,
    keep_scores: bool = False,
    detector: str = "mtcnn",
    progress: Callable[[int], Any] = lambda _: None,
) -> dict[str, Any]:
    """k-fold accuracy and the rest over the pairs file (``keep_scores``: also every pair's score);
    each image's subject is its face nearest the centre; ``progress(1)`` after each image."""
    pairs = read_lfw_pairs(lfw_dir / "pairs.txt")
    files = sorted({p.left for p in pairs} | {p.right for p in pairs})
    paths = [lfw_dir / "images" / f for f in files]
    run = embed_files(url, paths, concurrency, detector=detector, pick="centre", progress=progress)
    embedded = asyncio.run(run)
    got = dict(zip(files, embedded, strict=True))

    def score(a: str, b: str) -> float:
        ea, eb = got[a].embedding, got[b].embedding
        return -1.0 if ea is None or eb is None else float(ea @ eb)  # no face: scored as a miss

    scores = np.array([score(p.left, p.right) for p in pairs])
    labels = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    k = kfold_accuracy(scores, labels, folds)
    out: dict[str, Any] = {
        "pairs": len(pairs),
        "images": len(files),
        "detector": detector,
        "no_face": sum(1 for e in got.values() if e.embedding is None),
        "folds": len(set(folds.tolist())),
        "accuracy": k.mean,
        "accuracy_std": k.std,
        "best_threshold": best_threshold(scores, labels),
        "auc": auc(scores, labels),
    }
    for far in (1e-2, 1e-3):
        out[f"tar_at_far_{far:g}"], out[f"threshold_at_far_{far:g}"] = tar_at_far(scores, labels, far)
    if keep_scores:
        out |= {"scores": scores.tolist(), "labels": labels.tolist()}
    ref_path = lfw_dir / "landmarks_mtcnn.tsv"
    if ref_path.exists():
        ref = reference_landmarks(ref_path)

        # 5-point detectors against all 5 reference points; 4-point ones (BlazeFace) on eyes and nose
        def error(e: Embedded, r: np.ndarray) -> float:
            if e.landmarks is None:
                return float(np.inf)
            n = 5 if len(e.landmarks) == 5 else 3
            return float(np.linalg.norm(e.landmarks[:n] - r[:n], axis=1).mean())

        errs = [error(e, ref[f]) for f, e in got.items() if f in ref]
        arr = np.array(errs)
        out["landmark_mean_px"] = float(np.mean(arr[np.isfinite(arr)]))
        out["landmark_within_3px"] = float(np.mean(arr <= 3.0))
    return out


def photo_pairs(url: str, csv_path: Path, concurrency: int = 8, detector: str = "mtcnn") -> dict[str, Any]:
    """Pairs ``file_x,file_y,Decision`` (Yes/No) decided at the server's default threshold."""
    with csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    files = sorted({r["file_x"] for r in rows} | {r["file_y"] for r in rows})
    got = dict(
        zip(
            files,
            asyncio.run(
                embed_files(url, [csv_path.parent / f for f in files], concurrency, detector=detector)
            ),
            strict=True,
        )
    )
    dim = next((len(e.embedding) for e in got.values() if e.embedding is not None), 0)
    if dim == 0:
        raise FacepipeError("no face found in any photo of the pairs")
    threshold = server_threshold(url, dim)
    wrong, scores, labels = [], [], []
    for r in rows:
        a, b = got[r["file_x"]].embedding, got[r["file_y"]].embedding
        score = float(a @ b) if a is not None and b is not None else -1.0
        label = r["Decision"].strip().lower() == "yes"
        scores.append(score)
        labels.append(label)
        if (score >= threshold) != label:
            wrong.append(f"{r['file_x']},{r['file_y']}")
    out = {"pairs": len(rows), "correct": len(rows) - len(wrong), "threshold": threshold, "wrong": wrong}
    return out | {"scores": scores, "labels": labels}


async def _identification(
    url: str, lfw_dir: Path, api_key: str, concurrency: int, thresholds: np.ndarray
) -> dict[str, Any]:
    people = {d.name: sorted(d.glob("*.jpg")) for d in sorted((lfw_dir / "images").iterdir()) if d.is_dir()}
    enrolled = {n: ps for n, ps in people.items() if len(ps) >= 2}
    strangers = [ps[0] for ps in people.values() if len(ps) == 1]
    sem = asyncio.Semaphore(concurrency)
    async with AsyncClient(url, api_key, timeout=120) as c:

        async def enrol(name: str, image: Path) -> bool:
            async with sem:
                with contextlib.suppress(Conflict):
                    await c.create_subject(name, id=name)
                return bool((await c.enrol(name, [image], on_no_face="skip")).faces)

        async def top(image: Path) -> Match | None:
            async with sem:
                faces = (await c.identify([image], k=1))[0].faces
            return faces[0].matches[0] if faces and faces[0].matches else None

        ok = await asyncio.gather(*(enrol(n, ps[0]) for n, ps in enrolled.items()))
        names = [n for n, good in zip(enrolled, ok, strict=True) if good]
        probes = [(n, p) for n in names for p in enrolled[n][1:]]
        found = await asyncio.gather(*(top(p) for _, p in probes))
        false = await asyncio.gather(*(top(p) for p in strangers))
    right = [m is not None and m.subject == n for (n, _), m in zip(probes, found, strict=True)]
    hits = np.array(
        [m.similarity if m is not None and ok else -np.inf for m, ok in zip(found, right, strict=True)]
    )
    impostors = np.array([m.similarity if m is not None else -np.inf for m in false])
    sweep = {
        f"{t:.2f}": {"rank1": float(np.mean(hits >= t)), "strangers_matched": float(np.mean(impostors >= t))}
        for t in thresholds
    }
    return {
        "enrolled": len(names),
        "probes": len(probes),
        "rank1": float(np.mean(right)),
        "strangers": len(strangers),
        "sweep": sweep,
    }


def identification(
    url: str, lfw_dir: Path, api_key: str, concurrency: int = 8, thresholds: np.ndarray | None = None
) -> dict[str, Any]:
    """1:N on lfw-dev through the server: enrol the first image of everyone with two or more, identify
    their other images (rank-1), and identify people never enrolled (how often wrongly matched), by
    threshold (default 0.30 to 0.70 in steps of 0.05)."""
    sweep = np.arange(0.30, 0.71, 0.05) if thresholds is None else thresholds
    return asyncio.run(_identification(url, lfw_dir, api_key, concurrency, sweep))
