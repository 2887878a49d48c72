"""PNG pictures for ``facepipe bench`` and ``facepipe eval`` (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facepipe.errors import MissingDependency


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingDependency("pictures need matplotlib: pip install 'facepipe[plots]'") from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bench(result: dict[str, Any], path: Path) -> None:
    """Throughput and p99 latency against concurrency (or offered rate)."""
    plt = _pyplot()
    levels = result["levels"]
    x = [lv["concurrency"] for lv in levels]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, [lv["qps"] for lv in levels], "o-", color="tab:blue")
    ax.set_xlabel("offered rate (req/s)" if result["mode"] == "rate" else "concurrency")
    ax.set_ylabel("requests/s", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(x, [lv["p99_ms"] for lv in levels], "s--", color="tab:red")
    ax2.set_ylabel("p99 latency (ms)", color="tab:red")
    ax.set_title(f"facepipe bench: {result['protocol']} ({result['machine']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare_bench(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Several servers' throughput and p99 against concurrency, side by side."""
    plt = _pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name, result in results.items():
        x = [lv["concurrency"] for lv in result["levels"]]
        ax.plot(x, [lv["qps"] for lv in result["levels"]], "o-", label=name)
        ax2.plot(x, [lv["p99_ms"] for lv in result["levels"]], "s-", label=name)
    ax.set(xlabel="concurrency", ylabel="requests/s", xscale="log")
    ax2.set(xlabel="concurrency", ylabel="p99 latency (ms)", xscale="log", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def roc(scores: np.ndarray, labels: np.ndarray, path: Path, title: str) -> None:
    """TAR against FAR on a log axis."""
    plt = _pyplot()
    order = np.argsort(-scores)
    lab = labels[order].astype(bool)
    tar = np.cumsum(lab) / max(1, lab.sum())
    far = np.cumsum(~lab) / max(1, (~lab).sum())
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(np.maximum(far, 1e-5), tar)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def distribution(scores: np.ndarray, labels: np.ndarray, threshold: float, path: Path, title: str) -> None:
    """Histograms of same-person and different-person similarities, with the threshold."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(-0.3, 1.0, 66)
    ax.hist(scores[labels.astype(bool)], bins, alpha=0.6, label="same person")
    ax.hist(scores[~labels.astype(bool)], bins, alpha=0.6, label="different people")
    ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("pairs")
    ax.legend()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
