"""``facepipe gallery enroll|list|delete|reembed``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from facepipe.cli.common import (
    DEFAULT_URL,
    IMAGE_SUFFIXES,
    ApiKey,
    AsJson,
    DataDir,
    ModelsDir,
    Url,
    app,
    console,
    emit_json,
    need_server,
    out,
)
from facepipe.client import Client
from facepipe.errors import Conflict

gallery_app = typer.Typer(help="The face gallery: bulk enrolment, listing, deletion, re-embedding.")
app.add_typer(gallery_app, name="gallery", no_args_is_help=True)


def _todo(c: Client, root: Path) -> list[tuple[str, list[Path]]]:
    """Per sub-folder (subject id), the images not enrolled yet (by sha256, as the server has them)."""
    work = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        try:
            c.create_subject(folder.name.replace("_", " "), id=folder.name)
            done: set[str] = set()
        except Conflict:
            done = {f.image_sha256 for f in c.faces(folder.name)}
        left = [p for p in images if hashlib.sha256(p.read_bytes()).hexdigest() not in done]
        if left:
            work.append((folder.name, left))
    return work


@gallery_app.command("enroll")
def enroll(
    root: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="One sub-folder per subject.")],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    batch: Annotated[int, typer.Option(help="Images per request.")] = 8,
) -> None:
    """Enrol a folder tree: ROOT/<subject id>/*.jpg. Resumable: images already enrolled are skipped.

    Example: facepipe gallery enroll ./people --api-key $KEY
    """
    with Client(url, api_key, timeout=120) as c:
        work = _todo(c, root)
        total = sum(len(files) for _, files in work)
        enrolled = skipped = 0
        with Progress(console=console) as bar:
            task = bar.add_task("enrolling", total=total)
            for sid, files in work:
                for i in range(0, len(files), batch):
                    chunk = files[i : i + batch]
                    result = c.enrol(sid, chunk, on_no_face="skip")
                    enrolled += len(result.faces)
                    skipped += len(result.skipped)
                    bar.advance(task, len(chunk))
    out.print(f"{enrolled} faces enrolled to {len(work)} subjects; {skipped} images without a face skipped")


@gallery_app.command("list")
def list_subjects(url: Url = DEFAULT_URL, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """List every subject with its number of faces."""
    with Client(url, api_key) as c:
        subjects, offset = [], 0
        while True:
            page, total = c.subjects(offset, 1000)
            subjects += page
            offset += len(page)
            if not page or offset >= total:
                break
    if as_json:
        emit_json(subjects)
        return
    table = Table("id", "name", "faces")
    for s in subjects:
        table.add_row(s.id, s.name, str(s.faces))
    out.print(table)


@gallery_app.command("delete")
def delete(
    subjects: Annotated[list[str], typer.Argument(help="Subject ids.")],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Delete subjects and all their faces."""
    with Client(url, api_key) as c:
        for sid in subjects:
            out.print(f"deleted {sid} ({c.delete_subject(sid)} faces)")


@gallery_app.command("reembed")
def reembed(
    models: ModelsDir = Path("models"),
    data: DataDir = Path("data"),
    config: Annotated[Path | None, typer.Option(help="config.yml (embedding model, gallery file).")] = None,
    batch: Annotated[int, typer.Option(help="Crops per model call.")] = 64,
) -> None:
    """Recompute every face embedded by another model version from its stored crop, with the current
    model. Resumable: only faces still of another version are touched. Restart the server after.

    Example: facepipe gallery reembed --models ./models --data ./data
    """
    need_server("gallery reembed")
    from facepipe.api.reembed import Reembedder

    job = Reembedder.open(config, models, data)
    with Progress(console=console) as bar:
        task = bar.add_task(f"re-embedding with {job.model[0]}/{job.model[1]}", total=job.pending())
        done, no_crop = job.run(batch, lambda n: bar.advance(task, n))
    out.print(f"{done} faces re-embedded; {no_crop} without a stored crop left as they were")
