"""``facepipe gallery collections list|create|show|set-threshold|delete``: several galleries in one
server (a server admin key, ``auth.api_keys``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from facepipe.cli.common import DEFAULT_URL, ApiKey, AsJson, Url, console, emit_json, out
from facepipe.cli.gallery import gallery_app
from facepipe.client import Client, CollectionInfo

collections_app = typer.Typer(help="Gallery collections: galleries of their own, each with its keys.")
gallery_app.add_typer(collections_app, name="collections", no_args_is_help=True)
Name = Annotated[str, typer.Argument(help="Collection name (lowercase letters, digits, '_', '-').")]


def _table(infos: list[CollectionInfo]) -> Table:
    table = Table("name", "subjects", "faces", "threshold", "index")
    for c in infos:
        table.add_row(c.name, str(c.subjects), str(c.faces), f"{c.threshold:g}", c.index)
    return table


def _show(info: CollectionInfo, as_json: bool) -> None:
    emit_json(info) if as_json else out.print(_table([info]))


@collections_app.command("list")
def list_collections(url: Url = DEFAULT_URL, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """Every collection with its subjects, faces and threshold."""
    with Client(url, api_key) as c:
        infos = c.collections()
    emit_json(infos) if as_json else out.print(_table(infos))


@collections_app.command("create")
def create(
    name: Name,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    threshold: Annotated[float | None, typer.Option(help="Its identify threshold.")] = None,
    index: Annotated[str | None, typer.Option(help="exact, ivf or hnsw (default: gallery.index).")] = None,
    as_json: AsJson = False,
) -> None:
    """Create a collection and print its admin and read keys: they are shown this once.

    Example: facepipe gallery collections create shop-1 --threshold 0.5 --api-key $ADMIN_KEY
    """
    with Client(url, api_key) as c:
        info = c.create_collection(name, threshold, index)
    _show(info, as_json)
    if as_json:
        return
    console.print("keys of this collection (shown once; the server keeps only their digests):")
    out.print(f"admin key: {info.keys['admin']}\nread key:  {info.keys['read']}")


@collections_app.command("show")
def show(name: Name, url: Url = DEFAULT_URL, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """One collection."""
    with Client(url, api_key) as c:
        _show(c.collection(name), as_json)


@collections_app.command("set-threshold")
def set_threshold(
    name: Name,
    threshold: Annotated[float | None, typer.Argument(help="-1..1; leave out for the server's.")] = None,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Set a collection's identify threshold (none given: the server's gallery.identify_threshold)."""
    with Client(url, api_key) as c:
        _show(c.update_collection(name, threshold), False)


@collections_app.command("delete")
def delete(name: Name, url: Url = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Delete a collection with all its subjects and faces (erased from the store's files)."""
    with Client(url, api_key) as c:
        subjects, faces = c.delete_collection(name)
    out.print(f"deleted collection {name} ({subjects} subjects, {faces} faces)")
