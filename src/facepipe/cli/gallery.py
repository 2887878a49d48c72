"""``facepipe gallery enroll|list|delete|reembed`` (export, import, migrate: ``gallery_store.py``)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from facepipe.cli.common import (
    DEFAULT_URL,
    EXIT_REFUSED,
    IMAGE_SUFFIXES,
    ApiKey,
    AsJson,
    CollectionName,
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
from facepipe.errors import Conflict, InvalidInput, NotFound

gallery_app = typer.Typer(help="The face gallery: bulk enrolment, listing, deletion, re-embedding.")
app.add_typer(gallery_app, name="gallery", no_args_is_help=True)


@dataclass(slots=True)
class Tally:
    """What a bulk enrolment did, file by file."""

    enrolled: int = 0
    subjects: set[str] = field(default_factory=set)
    already: int = 0
    no_face: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _todo(c: Client, root: Path, tally: Tally) -> list[tuple[str, list[Path], bool]]:
    """Per sub-folder (subject id): the images not enrolled yet (by sha256, as the server has them),
    and whether the subject is new (created only once one of its faces is enrolled)."""
    work = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        try:
            done = {f.image_sha256 for f in c.faces(folder.name)}
            new = False
        except NotFound:
            done, new = set(), True
        left = [p for p in images if hashlib.sha256(p.read_bytes()).hexdigest() not in done]
        tally.already += len(images) - len(left)
        if left:
            work.append((folder.name, left, new))
    return work


def _send(c: Client, sid: str, files: list[Path], tally: Tally) -> None:
    """One request for ``files``; if the server refuses it (one bad file fails the request, naming
    its index), each file again on its own, so that only the bad ones are left out, by name."""
    try:
        result = c.enrol(sid, files, on_no_face="skip")
    except InvalidInput as exc:
        if len(files) == 1:
            tally.failed.append((files[0], exc.message.removeprefix("image[0]: ")))
            return
        for f in files:
            _send(c, sid, [f], tally)
        return
    tally.enrolled += len(result.faces)
    if result.faces:
        tally.subjects.add(sid)
    tally.no_face += [files[i] for i in result.skipped]


def _enrol_subject(
    c: Client, sid: str, files: list[Path], new: bool, batch: int, tally: Tally, advance: Callable[[int], Any]
) -> None:
    if new:
        with contextlib.suppress(Conflict):  # made meanwhile by someone else: enrol into it
            c.create_subject(sid.replace("_", " "), id=sid)
    before = tally.enrolled
    for i in range(0, len(files), batch):
        _send(c, sid, files[i : i + batch], tally)
        advance(len(files[i : i + batch]))
    if new and tally.enrolled == before and not c.faces(sid):
        c.delete_subject(sid)  # nothing of it could be enrolled: no empty subject left behind


def _report(tally: Tally, total: int) -> None:
    if not total:
        out.print(f"nothing to enrol: all {tally.already} images are already enrolled")
        return
    out.print(
        f"{tally.enrolled} faces enrolled to {len(tally.subjects)} subjects; "
        f"{tally.already} images already enrolled; {len(tally.no_face)} images without a face skipped"
    )
    for path in tally.no_face:
        out.print(f"  no face: {path}")
    for path, why in tally.failed:
        console.print(f"[red]failed:[/] {path}: {why}")


@gallery_app.command("enroll")
def enroll(
    root: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="One sub-folder per subject.")],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    batch: Annotated[int, typer.Option(help="Images per request.")] = 8,
    collection: CollectionName = None,
) -> None:
    """Enrol a folder tree: ROOT/<subject id>/*.jpg. Resumable: images already enrolled are skipped
    (and counted). A file the server refuses (not an image, corrupt) is named and left out; the
    others are enrolled; the exit code is then 2.

    Example: facepipe gallery enroll ./people --api-key $KEY
    """
    tally = Tally()
    with Client(url, api_key, timeout=120, collection=collection) as c:
        work = _todo(c, root, tally)
        total = sum(len(files) for _, files, _ in work)
        if total:
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task("enrolling", total=total)
                for sid, files, new in work:
                    _enrol_subject(c, sid, files, new, batch, tally, partial(bar.advance, task))
    _report(tally, total)
    if tally.failed:
        raise typer.Exit(EXIT_REFUSED)


@gallery_app.command("list")
def list_subjects(
    url: Url = DEFAULT_URL, api_key: ApiKey = None, as_json: AsJson = False, collection: CollectionName = None
) -> None:
    """List every subject with its number of faces."""
    with Client(url, api_key, collection=collection) as c:
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
    collection: CollectionName = None,
) -> None:
    """Delete subjects and all their faces."""
    with Client(url, api_key, collection=collection) as c:
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
