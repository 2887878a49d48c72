"""``facepipe gallery export|import|migrate``: server-side commands on stores directly (docs/gallery.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from facepipe.cli.common import DataDir, console, need_server, out
from facepipe.cli.gallery import gallery_app
from facepipe.errors import InvalidInput

StoreUrl = Annotated[
    str, typer.Option("--store", help="The store: sqlite:///FILE (relative to --data) or postgresql://...")
]


def _model(spec: str | None) -> tuple[str, str] | None:
    if spec is None:
        return None
    name, _, version = spec.rpartition("/")
    if not name or not version:
        raise InvalidInput(f"--model: {spec!r} is not NAME/VERSION")
    return name, version


@gallery_app.command("export")
def export(
    file: Annotated[Path, typer.Argument(dir_okay=False, help="Archive to write (.tar, .tar.gz or .tgz).")],
    store: StoreUrl,
    data: DataDir = Path("data"),
    batch: Annotated[int, typer.Option(help="Faces per batch.")] = 500,
    collection: Annotated[
        str | None, typer.Option(help="Export only this collection (default: every collection).")
    ] = None,
) -> None:
    """Write the whole gallery of a store (subjects, metadata, faces with crops and embeddings with
    their model version), or one collection of it, to a portable archive, streaming (docs/gallery.md).

    Example: facepipe gallery export shop-1.tar --store sqlite:///gallery.db --collection shop-1
    """
    need_server("gallery export")
    from facepipe.gallery.archive import export as write_archive
    from facepipe.gallery.backends import open_store

    source = open_store(store, data)
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("exporting", total=source.count_after("", 0, collection))
            tally = write_archive(source, file, batch, lambda n: bar.advance(task, n), collection)
    finally:
        source.close()
    out.print(f"{tally.subjects} subjects and {tally.faces} faces written to {file}")


@gallery_app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="An archive from `gallery export`.")
    ],
    store: StoreUrl,
    data: DataDir = Path("data"),
    model: Annotated[
        str | None, typer.Option(help="NAME/VERSION: refuse an archive of embeddings made by another model.")
    ] = None,
    collection: Annotated[
        str | None,
        typer.Option(help="Import everything into this collection (it must exist; default: each row's own)."),
    ] = None,
) -> None:
    """Read an archive into a store. Idempotent: subjects it holds (by id) and faces it holds (by
    subject, image sha256 and model) are skipped. An archive whose embeddings were made by another
    model than the store's faces (or --model) is refused.

    Example: facepipe gallery import gallery.tar --store postgresql://db/facepipe
    """
    need_server("gallery import")
    from facepipe.gallery.archive import import_archive
    from facepipe.gallery.backends import open_store

    expect = _model(model)
    target = open_store(store, data)
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("importing", total=None)
            tally = import_archive(file, target, expect, lambda n: bar.advance(task, n), collection)
    finally:
        target.close()
    out.print(
        f"{tally.subjects} subjects and {tally.faces} faces imported; "
        f"{tally.subjects_kept} subjects and {tally.faces_kept} faces already there"
    )


@gallery_app.command("migrate")
def migrate(
    source_url: Annotated[str, typer.Option("--from", help="The store to copy from.")],
    target_url: Annotated[str, typer.Option("--to", help="The store to copy into.")],
    data: DataDir = Path("data"),
    cursor: Annotated[Path, typer.Option(help="Where the resumable cursor is kept.")] = Path(
        "gallery-migrate.cursor"
    ),
    batch: Annotated[int, typer.Option(help="Rows per transaction.")] = 500,
) -> None:
    """Copy a gallery from one store to another (e.g. SQLite to PostgreSQL), in batches, with its
    collections (their settings and key digests: their keys keep working). Resumable:
    the cursor file records the last copied subject and face; a re-run continues from there and
    copies nothing twice.

    Example: facepipe gallery migrate --from sqlite:///gallery.db --to postgresql://db/facepipe
    """
    need_server("gallery migrate")
    from facepipe.gallery import transfer
    from facepipe.gallery.backends import open_store, redact

    source = open_store(source_url, data)
    try:
        target = open_store(target_url, data)
        try:
            cur = transfer.Cursor.load(cursor, redact(source_url, data), redact(target_url, data))
            with Progress(console=console) as bar:
                task = bar.add_task("migrating", total=transfer.remaining(source, cur))
                tally = transfer.migrate(source, target, cur, cursor, batch, lambda n: bar.advance(task, n))
        finally:
            target.close()
    finally:
        source.close()
    out.print(
        f"{tally.subjects} subjects and {tally.faces} faces copied; "
        f"{tally.subjects_kept} subjects and {tally.faces_kept} faces were there already"
    )
