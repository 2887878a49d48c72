"""``facepipe bench run|compare`` and ``facepipe eval lfw|pairs``."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.progress import MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn
from rich.table import Table

from facepipe.cli.common import DEFAULT_URL, IMAGE_SUFFIXES, ApiKey, Url, app, console, emit_json, out
from facepipe.errors import InvalidInput
from facepipe.tools.loadgen import Level

bench_app = typer.Typer(help="Load generator: concurrency sweeps and fixed-rate runs; compare results.")
eval_app = typer.Typer(help="Accuracy of a running server on labelled pairs.")
app.add_typer(bench_app, name="bench", no_args_is_help=True)
app.add_typer(eval_app, name="eval", no_args_is_help=True)


class TimedBars:
    """One progress bar per timed run (a bench level), filled by the clock while the run goes on."""

    def __init__(self) -> None:
        self.bars = Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console)
        self._task: TaskID | None = None
        self._t0, self._seconds = 0.0, 0.0
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="bench-bars", daemon=True)

    def __enter__(self) -> TimedBars:
        self.bars.start()
        self._ticker.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._ticker.join()
        self._finish()
        self.bars.stop()

    def start(self, what: str, seconds: float) -> None:
        self._finish()
        self._t0, self._seconds = time.monotonic(), seconds
        self._task = self.bars.add_task(what, total=seconds)

    def _finish(self) -> None:
        if self._task is not None:
            self.bars.update(self._task, completed=self._seconds)

    def _tick(self) -> None:
        while not self._stop.wait(0.2):
            task = self._task
            if task is not None:
                done = min(self._seconds, time.monotonic() - self._t0)
                self.bars.update(task, completed=done)


def _images(paths: list[Path], limit: int) -> list[bytes]:
    files = [
        f
        for p in paths
        for f in (sorted(p.rglob("*")) if p.is_dir() else [p])
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise InvalidInput("no images found (JPEG, PNG, WebP or BMP files, or folders of them)")
    return [f.read_bytes() for f in files[:limit]]


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInput(f"expected comma-separated numbers, got {text!r}") from None


def _table(rows: list[tuple[str, Level | None]], mode: str) -> Table:
    table = Table(
        "run",
        "rate" if mode == "rate" else "concurrency",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
    )
    for name, lv in rows:
        if lv is None:
            continue
        errors = ", ".join(f"{k}: {v}" for k, v in lv.errors.items()) or "0"
        table.add_row(
            name,
            str(lv.concurrency),
            f"{lv.qps:.1f}",
            f"{lv.p50_ms:.1f}",
            f"{lv.p90_ms:.1f}",
            f"{lv.p99_ms:.1f}",
            f"{lv.max_ms:.1f}",
            errors,
        )
    return table


@bench_app.command("run")
def bench_run(
    images: Annotated[list[Path], typer.Argument(exists=True, help="Image files or folders.")],
    url: Url = DEFAULT_URL,
    grpc: Annotated[str, typer.Option(help="gRPC host:port for the *-grpc protocols.")] = "127.0.0.1:18091",
    protocol: Annotated[
        str, typer.Option(help="seed, kserve, v1-detect, v1-embed, v1-identify, seed-grpc, kserve-grpc.")
    ] = "seed",
    concurrency: Annotated[str, typer.Option(help="Closed loop: comma-separated levels.")] = "1,4,8,16",
    rate: Annotated[str, typer.Option(help="Open loop instead: comma-separated requests/s (Poisson).")] = "",
    duration: Annotated[float, typer.Option(help="Seconds per level.")] = 10.0,
    warmup: Annotated[float, typer.Option(help="Warm-up seconds, not counted.")] = 2.0,
    processes: Annotated[int, typer.Option(help="Client processes (HTTP).")] = 1,
    max_images: Annotated[int, typer.Option(help="Distinct images to cycle through.")] = 1000,
    api_key: ApiKey = None,
    json_out: Annotated[Path | None, typer.Option("--out", help="Write the results as JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG: throughput and p99 per level.")] = None,
) -> None:
    """Closed-loop concurrency sweep, or an open-loop fixed-rate run, against any protocol.

    Example: facepipe bench run ./faces --protocol v1-detect --concurrency 1,8,16 --out r.json --plot r.png
    """
    from facepipe.tools import bench as benchmark
    from facepipe.tools import plots

    mode, levels = ("rate", _ints(rate)) if rate else ("concurrency", _ints(concurrency))
    if not protocol.endswith("-grpc"):
        benchmark.reachable(url.rstrip("/"))
    target = benchmark.target(protocol, url.rstrip("/"), grpc, _images(images, max_images), api_key)
    rows: list[tuple[str, Level | None]] = []

    def show(lv: Level) -> None:
        rows.append((protocol, lv))
        console.print(f"{mode} {lv.concurrency}: {lv.qps:.1f} req/s, p99 {lv.p99_ms:.1f} ms")

    with TimedBars() as bars:
        result = benchmark.sweep(target, levels, duration, mode, processes, warmup, show, bars.start)
    out.print(_table(rows, mode))
    if json_out:
        json_out.write_text(json.dumps(result, indent=2))
    if plot:
        plots.bench(result, plot)


@bench_app.command("compare")
def bench_compare(
    a: Annotated[Path, typer.Argument(exists=True)], b: Annotated[Path, typer.Argument(exists=True)]
) -> None:
    """Two result files side by side, level by level, with the ratio of throughputs."""
    from facepipe.tools import bench as benchmark

    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    table = Table("level", f"{a.stem} req/s", f"{b.stem} req/s", "ratio", f"{a.stem} p99", f"{b.stem} p99")
    for level, la, lb in benchmark.compare(ra, rb):
        ratio = f"{lb.qps / la.qps:.2f}x" if la and lb and la.qps else "-"
        table.add_row(
            str(level),
            f"{la.qps:.1f}" if la else "-",
            f"{lb.qps:.1f}" if lb else "-",
            ratio,
            f"{la.p99_ms:.1f}" if la else "-",
            f"{lb.p99_ms:.1f}" if lb else "-",
        )
    out.print(table)


def _pictures(res: dict[str, Any], prefix: Path | None, title: str, threshold: float) -> None:
    from facepipe.tools import plots

    if prefix is None:
        return
    scores, labels = np.asarray(res["scores"]), np.asarray(res["labels"], bool)
    plots.roc(scores, labels, prefix.with_name(prefix.name + "-roc.png"), title)
    plots.distribution(scores, labels, threshold, prefix.with_name(prefix.name + "-scores.png"), title)


@eval_app.command("lfw")
def eval_lfw(
    data: Annotated[
        Path, typer.Option("--data", exists=True, file_okay=False, help="lfw dir: pairs.txt, images/.")
    ],
    url: Url = DEFAULT_URL,
    concurrency: int = 8,
    detector: Annotated[
        str, typer.Option(help="Detector: mtcnn, or blazeface / blazeface_full where installed.")
    ] = "mtcnn",
    as_json: Annotated[bool, typer.Option("--json")] = False,
    plots: Annotated[Path | None, typer.Option(help="Write PREFIX-roc.png and PREFIX-scores.png.")] = None,
) -> None:
    """Verification accuracy on an LFW-style pairs file through a running server (as many folds as the
    file has): accuracy ± std, AUC, TAR at FAR 1e-2 and 1e-3, best threshold, landmark error. Each
    image's subject is its face nearest the centre, as LFW's images are centred on the named person.

    Example: facepipe eval lfw --data ../shared/data/lfw-dev --plots lfw
    """
    from facepipe.tools.eval_server import lfw, lfw_images

    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console) as bar:
        task = bar.add_task(f"embedding ({detector})", total=lfw_images(data))
        res = lfw(url, data, concurrency, True, detector, lambda n: bar.advance(task, n))
    _pictures(
        res,
        plots,
        f"{data.name}: {res['folds']}-fold accuracy {100 * res['accuracy']:.2f} %",
        res["best_threshold"],
    )
    summary = {k: v for k, v in res.items() if k not in ("scores", "labels")}
    if as_json:
        emit_json(summary)
        return
    table = Table("measure", "value")
    table.add_row(
        f"{summary['folds']}-fold accuracy",
        f"{100 * summary['accuracy']:.2f} % ± {100 * summary['accuracy_std']:.2f}",
    )
    for key in (
        "auc",
        "best_threshold",
        "tar_at_far_0.01",
        "tar_at_far_0.001",
        "no_face",
        "landmark_within_3px",
    ):
        if key in summary:
            table.add_row(
                key, f"{summary[key]:.4f}" if isinstance(summary[key], float) else str(summary[key])
            )
    out.print(table)


@eval_app.command("pairs")
def eval_pairs(
    csv: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV: file_x,file_y,Decision (Yes/No).")
    ],
    url: Url = DEFAULT_URL,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    plots: Annotated[Path | None, typer.Option(help="Write PREFIX-roc.png and PREFIX-scores.png.")] = None,
) -> None:
    """Labelled photo pairs decided at the server's default threshold (largest face per photo).
    Exit code 1 if any pair is decided wrongly.

    Example: facepipe eval pairs ../shared/data/photos/master.csv
    """
    from facepipe.tools.eval_server import photo_pairs

    res = photo_pairs(url, csv)
    _pictures(res, plots, f"{csv.name}: {res['correct']}/{res['pairs']} right", res["threshold"])
    summary = {k: v for k, v in res.items() if k not in ("scores", "labels")}
    if as_json:
        emit_json(summary)
    else:
        out.print(
            f"{summary['correct']} of {summary['pairs']} pairs right at threshold {summary['threshold']}"
        )
        for pair in summary["wrong"]:
            out.print(f"  wrong: {pair}")
    raise typer.Exit(0 if not summary["wrong"] else 1)
