"""``facepipe detect|embed|verify|identify FILES`` against a running server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from facepipe.cli.common import (
    DEFAULT_URL,
    EXIT_NO_MATCH,
    ApiKey,
    AsJson,
    CollectionName,
    Url,
    app,
    emit_json,
    out,
)
from facepipe.client import Client, ImageResult

Files = Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Image files.")]
MinQuality = Annotated[
    float | None, typer.Option(help="Refuse faces of lower quality score (0..1; docs/api.md).", min=0, max=1)
]
RequireLive = Annotated[
    bool | None, typer.Option(help="Refuse faces the anti-spoofing model calls spoof (server default).")
]


def _faces_table(files: list[Path], results: list[ImageResult], matches: bool = False) -> Table:
    extra = ["subject", "similarity"] if matches else []
    table = Table("image", "face", "box", "score", "size", "quality", *extra)
    for path, res in zip(files, results, strict=True):
        if not res.faces:
            table.add_row(path.name, "-", "no face", "", "", "")
        for j, f in enumerate(res.faces):
            box = ", ".join(f"{v:.0f}" for v in f.box)
            quality = f"{f.quality['score']:.2f}" if f.quality else ""
            cells = [path.name, str(j), box, f"{f.score:.3f}", f"{f.size:.0f}", quality]
            if f.refused:
                cells += ["refused", f.refused]
            elif matches:
                best = f.matches[0] if f.matches else None
                who = f"{best.name or best.subject}{'' if best.match else ' (no match)'}" if best else "-"
                cells += [who, f"{best.similarity:.3f}" if best else ""]
            table.add_row(*cells)
    return table


@app.command("detect")
def detect(files: Files, url: Url = DEFAULT_URL, as_json: AsJson = False, max_faces: int = 0) -> None:
    """Find faces with landmarks.

    Example: facepipe detect group.jpg --max-faces 5
    """
    with Client(url) as c:
        results = c.detect(files, max_faces=max_faces)
    emit_json(results) if as_json else out.print(_faces_table(files, results))


@app.command("embed")
def embed(
    files: Files,
    url: Url = DEFAULT_URL,
    aligned: Annotated[bool, typer.Option(help="Files are aligned 112x112 crops.")] = False,
    as_json: AsJson = False,
) -> None:
    """Embeddings of every face of each photo (or of each aligned crop); --json prints the vectors.

    Example: facepipe embed a.jpg b.jpg --json > embeddings.json
    """
    with Client(url) as c:
        if aligned:
            vectors = c.embed_aligned(files)
            rows = [{"image": i, "embedding": v} for i, v in enumerate(vectors)]
            emit_json(rows) if as_json else out.print(_vectors_table(files, [[v] for v in vectors]))
            return
        results = c.embed(files)
    if as_json:
        emit_json(results)
        return
    out.print(_vectors_table(files, [[f.embedding for f in r.faces] for r in results]))


def _vectors_table(files: list[Path], vectors: list[list[Any]]) -> Table:
    table = Table("image", "face", "dim", "first values")
    for path, faces in zip(files, vectors, strict=True):
        if not faces:
            table.add_row(path.name, "-", "no face", "")
        for j, v in enumerate(faces):
            table.add_row(path.name, str(j), str(len(v)), " ".join(f"{x:+.3f}" for x in v[:4]) + " ...")
    return table


@app.command("verify")
def verify(
    a: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    b: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    url: Url = DEFAULT_URL,
    threshold: Annotated[float | None, typer.Option(help="Cosine threshold (server default).")] = None,
    min_quality: MinQuality = None,
    require_live: RequireLive = None,
    as_json: AsJson = False,
) -> None:
    """Same person? Exit code 0 if they match, 1 if not (2 if a face was refused).

    Example: facepipe verify id_photo.jpg selfie.jpg --min-quality 0.4 && echo same
    """
    with Client(url) as c:
        v = c.verify(a, b, threshold, min_quality=min_quality, require_live=require_live)
    if as_json:
        emit_json(v)
    else:
        word = "[green]match[/]" if v.match else "[red]no match[/]"
        out.print(f"{word}  similarity {v.similarity:.4f}  (threshold {v.threshold})")
    raise typer.Exit(0 if v.match else EXIT_NO_MATCH)


@app.command("identify")
def identify(
    files: Files,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Candidates per face (1..100).")] = 1,
    min_quality: MinQuality = None,
    require_live: RequireLive = None,
    as_json: AsJson = False,
    collection: CollectionName = None,
) -> None:
    """Who is in these photos (1:N against the gallery)? Exit code 0 if any face matched, 1 if none.

    Example: facepipe identify crowd.jpg -k 3 --json
    """
    with Client(url, api_key, collection=collection) as c:
        results = c.identify(files, k, min_quality=min_quality, require_live=require_live)
    emit_json(results) if as_json else out.print(_faces_table(files, results, matches=True))
    matched = any(m.match for r in results for f in r.faces for m in f.matches or [])
    raise typer.Exit(0 if matched else EXIT_NO_MATCH)
