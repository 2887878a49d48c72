"""Accuracy measured through a running server (its own detection, alignment and embedding).
Writes bench/results/accuracy.{json,md}.

    .venv/bin/python bench/accuracy.py [--url http://127.0.0.1:9998]   # default: starts a server
    .venv/bin/python bench/accuracy.py --precision fp32 --out accuracy-fp32  # every model's precision set

The precision each model ran at (its KServe metadata) is recorded with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from facepipe.config import DEFAULT_OPS  # noqa: E402
from facepipe.tools.eval_server import identification, lfw, photo_pairs  # noqa: E402
from tests.integration.conftest import start_server, stop_server  # noqa: E402

KEY = "bench-admin-key-0123456789"


def precisions(url: str) -> dict[str, str]:
    """What each served model runs at (``auto`` resolved), from its KServe metadata. ``ArcFace`` is the
    embedder op (also /v1's embed); the other bundles' KServe models resolve ``auto`` as the /v1 ops
    do, but follow their own op config (default ``auto``), not ``--precision``."""
    names = [r["name"] for r in httpx.post(url + "/v2/repository/index", timeout=30).json()]
    meta = {n: httpx.get(f"{url}/v2/models/{n}", timeout=30).json() for n in ["ArcFace", *names]}
    return {n: m.get("parameters", {}).get("precision", "?") for n, m in meta.items()}


def server_config(precision: str | None, detect_precision: str | None = None) -> dict:
    """The default ops, every one at ``precision`` if given (the detect op at ``detect_precision``)."""
    ops: dict = {}
    for name, op in DEFAULT_OPS.items():
        chosen = detect_precision if name == "detect" and detect_precision else precision
        if chosen:
            ops[name] = op | {"local_service_conf": op.get("local_service_conf", {}) | {"precision": chosen}}
        else:
            ops[name] = op
    return {"op": ops, "auth": {"api_keys": [KEY]}}


def precision_note(res: dict, precision: str | None) -> str:
    p = res["precisions"]
    if precision and precision != "auto":
        return f"Every op at `precision: {precision}` (the embedder's metadata: {p['ArcFace']})."
    others = ", ".join(f"{k} {v}" for k, v in p.items() if k != "ArcFace")
    return (
        f"Every op at `precision: auto` (the default): the embedder ran at {p['ArcFace']}, the "
        f"detection bundles as their KServe metadata says: {others}."
    )


def measure(url: str, data: Path, lfw_only: str = "") -> dict:
    t0 = time.perf_counter()
    out: dict = {"precisions": precisions(url)}
    if lfw_only:
        out[f"lfw_dev_{lfw_only}"] = lfw(url, data / "lfw-dev", detector=lfw_only)
        return out | {"seconds": time.perf_counter() - t0}
    out["lfw_dev"] = lfw(url, data / "lfw-dev")
    out["photos"] = photo_pairs(url, data / "photos/master.csv")
    out["identification"] = identification(url, data / "lfw-dev", KEY)
    out["lfw_dev_blazeface"] = lfw(url, data / "lfw-dev", detector="blazeface")
    out["photos_blazeface"] = photo_pairs(url, data / "photos/master.csv", detector="blazeface")
    out["seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="every op's; default: config's")
    ap.add_argument("--out", default="accuracy", help="bench/results/<out>.{json,md}")
    ap.add_argument(
        "--lfw-only", choices=["mtcnn", "blazeface"], help="lfw-dev with this detector only (.json)"
    )
    ap.add_argument(
        "--detect-precision", choices=["auto", "fp32", "bf16"], help="the detect op's, if not --precision"
    )
    args = ap.parse_args()
    if args.url:
        res = measure(args.url, args.data, args.lfw_only)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run = start_server(args.models, Path(tmp), server_config(args.precision, args.detect_precision))
            try:
                res = measure(run.url, args.data, args.lfw_only)
            finally:
                stop_server(run)
    res["machine"] = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores"
    res["command"] = "python bench/accuracy.py " + " ".join(sys.argv[1:])
    out = ROOT / "bench/results"
    (out / f"{args.out}.json").write_text(json.dumps(res, indent=2))
    if args.lfw_only:
        print(json.dumps(res["precisions"]), res[f"lfw_dev_{args.lfw_only}"]["accuracy"])
        return
    lf, ph = res["lfw_dev"], res["photos"]
    lines = [
        "# Accuracy through the running server",
        "",
        f"Machine: {res['machine']}. Command: `{res['command']}` ({res['seconds']:.0f} s). Every image goes "
        "through `POST /v1/embed` (MTCNN detection, 5-point ArcFace alignment, MobileFaceNet). An LFW "
        "image's subject is the face nearest its centre (LFW images are crops centred on the named "
        "person; 11 % of lfw-dev's also show someone else, at times larger); a photo's is its largest "
        "face. An image without a face scores -1 (counted as a miss). " + precision_note(res, args.precision),
        "",
        "| measure | value | target |",
        "| --- | --- | --- |",
        f"| lfw-dev {lf['folds']}-fold accuracy ({lf['pairs']} pairs) | {100 * lf['accuracy']:.2f} % "
        f"± {100 * lf['accuracy_std']:.2f} | ≥ 99.2 % |",
        f"| TAR @ FAR 1e-3 | {100 * lf['tar_at_far_0.001']:.2f} % "
        f"(threshold {lf['threshold_at_far_0.001']:.3f}) | ≥ 97 % |",
        f"| TAR @ FAR 1e-2 | {100 * lf['tar_at_far_0.01']:.2f} % | |",
        f"| AUC | {lf['auc']:.5f} | |",
        f"| accuracy-optimal threshold (all pairs) | {lf['best_threshold']:.3f} | |",
        f"| images without a detected face | {lf['no_face']} of {lf['images']} | |",
        f"| landmarks within 3 px of the reference | {100 * lf['landmark_within_3px']:.2f} % "
        f"(mean {lf['landmark_mean_px']:.2f} px) | ≥ 99 % |",
        f"| photos/master.csv pairs decided right at threshold {ph['threshold']} | "
        f"{ph['correct']} / {ph['pairs']} | 300 / 300 |",
    ]
    bl, bp = res["lfw_dev_blazeface"], res["photos_blazeface"]
    lines += [
        "",
        "## The BlazeFace path (`detector=blazeface`: 4-point alignment, eyes, nose tip, mouth centre)",
        "",
        "| measure | BlazeFace | MTCNN (above) |",
        "| --- | --- | --- |",
        f"| lfw-dev {bl['folds']}-fold accuracy | {100 * bl['accuracy']:.2f} % "
        f"± {100 * bl['accuracy_std']:.2f} | {100 * lf['accuracy']:.2f} % |",
        f"| TAR @ FAR 1e-3 | {100 * bl['tar_at_far_0.001']:.2f} % | {100 * lf['tar_at_far_0.001']:.2f} % |",
        f"| images without a detected face | {bl['no_face']} of {bl['images']} | {lf['no_face']} |",
        f"| eyes and nose within 3 px of the reference (mean {bl['landmark_mean_px']:.2f} px) | "
        f"{100 * bl['landmark_within_3px']:.1f} % | |",
        f"| photo pairs right at {bp['threshold']} | {bp['correct']} / {bp['pairs']} | "
        f"{ph['correct']} / {ph['pairs']} |",
    ]
    ident = res["identification"]
    lines += [
        "",
        "## 1:N identification (lfw-dev, through `/v1/subjects/{id}/faces` and `/v1/identify`)",
        "",
        f"The first image of each of the {ident['enrolled']} people with two or more images is enrolled; "
        f"their other {ident['probes']} images are identified (rank-1: the top subject is the right "
        f"one: **{100 * ident['rank1']:.2f} %**), and so are the {ident['strangers']} people never "
        "enrolled (a `match` for them is a false match). By threshold:",
        "",
        "| threshold | enrolled people accepted (right subject, similarity ≥ t) | strangers matched |",
        "| --- | --- | --- |",
    ]
    for t, row in ident["sweep"].items():
        mark = " (default `gallery.identify_threshold`)" if t == "0.60" else ""
        lines.append(f"| {t}{mark} | {100 * row['rank1']:.2f} % | {100 * row['strangers_matched']:.2f} % |")
    if ph["wrong"]:
        lines += ["", "Wrong photo pairs: " + "; ".join(ph["wrong"])]
    md = out / f"{args.out}.md"
    # the clean pack's section (bench/accuracy_clean.py) is kept
    kept = md.read_text().partition("## The clean pack")[1:] if md.exists() else ("", "")
    md.write_text("\n".join(lines) + "\n" + ("\n" + "".join(kept) if kept[0] else ""))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
