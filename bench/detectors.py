"""The BlazeFace detectors compared: short-range (``blazeface``) against full-range
(``blazeface-full``): recall on the real photos and on lfw-dev, recall on faces far from the camera
(lfw-dev images shrunk into a 1280x720 frame, as a face a few metres away is), and speed per photo
on this CPU (one thread, one photo per call). Writes bench/results/detectors.{json,md}.

    nice -n 10 .venv/bin/python bench/detectors.py --models ./models   # after `models pull clean`
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from facepipe.face.detect_blazeface import BlazeFaceOp  # noqa: E402
from facepipe.models.bundle import load_bundle  # noqa: E402
from facepipe.runtime import RuntimeSpec  # noqa: E402

NAMES = {"blazeface": "short-range", "blazeface-full": "full-range"}
FRAME = (720, 1280)  # the frame far faces are placed in (h, w)
FAR_SIDES = (400, 320, 250, 200, 160, 125)  # lfw-dev image side in the frame (its face: ~0.45 of it)
THRESHOLD = 0.5  # face.blazeface_threshold


def rgb(path: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / max((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter, 1e-9)


def photos(ops: dict[str, BlazeFaceOp], files: list[Path]) -> dict:
    """Faces each detector finds on each photo; the full-range model's faces the short-range misses."""
    found = {
        n: {f.name: [fc.box for fc in op.detect([rgb(f)], [THRESHOLD])[0]] for f in files}
        for n, op in ops.items()
    }
    missed = []
    for f in files:
        for box in found["blazeface-full"][f.name]:
            if all(iou(box, b) < 0.3 for b in found["blazeface"][f.name]):
                missed.append(
                    {"photo": f.name, "box": [round(v) for v in box], "side": round(box[2] - box[0])}
                )
    return {
        "faces": {n: sum(len(v) for v in d.values()) for n, d in found.items()},
        "boxes": found,
        "missed": missed,
    }


def centre_found(op: BlazeFaceOp, image: np.ndarray, centre: tuple[float, float], side: float) -> bool:
    """A face whose box centre lies within a quarter of ``side`` of ``centre``."""
    for face in op.detect([image], [THRESHOLD])[0]:
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        if abs(cx - centre[0]) < side / 4 and abs(cy - centre[1]) < side / 4:
            return True
    return False


def lfw(ops: dict[str, BlazeFaceOp], files: list[Path]) -> dict:
    """Recall of the centre (named) face: at lfw-dev's own 250x250, and shrunk into a 1280x720 frame."""
    rng = np.random.default_rng(0)
    out: dict = {n: {} for n in ops}
    out["short_missed"] = []
    for side in (0, *FAR_SIDES):
        hits = dict.fromkeys(ops, 0)
        for f in files:
            img = rgb(f)
            if side == 0:
                frame, centre, s = img, (img.shape[1] / 2, img.shape[0] / 2), float(img.shape[0])
            else:
                small = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
                frame = np.full((*FRAME, 3), 96, np.uint8)
                x, y = int(rng.integers(0, FRAME[1] - side)), int(rng.integers(0, FRAME[0] - side))
                frame[y : y + side, x : x + side] = small
                centre, s = (x + side / 2, y + side / 2), float(side)
            got = {n: centre_found(op, frame, centre, s) for n, op in ops.items()}
            for n in ops:
                hits[n] += got[n]
            if (
                side
                and got["blazeface-full"]
                and not got["blazeface"]
                and len(out["short_missed"]) < 3 * len(FAR_SIDES)
            ):
                out["short_missed"].append(f"{f.parent.name}/{f.name} at {side} px")
        for n in ops:
            out[n]["native" if side == 0 else str(side)] = hits[n] / len(files)
    return out


def speed(ops: dict[str, BlazeFaceOp], files: list[Path], rounds: int) -> dict:
    images = [rgb(f) for f in files]
    out = {}
    for n, op in ops.items():
        op.detect(images[:1], [THRESHOLD])
        times = []
        for _ in range(rounds):
            for img in images:
                t0 = time.perf_counter()
                op.detect([img], [THRESHOLD])
                times.append(time.perf_counter() - t0)
        out[n] = {
            "median_ms": 1000 * float(np.median(times)),
            "p90_ms": 1000 * float(np.percentile(times, 90)),
        }
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _ms(d: dict) -> str:
    return f"{d['median_ms']:.1f} ({d['p90_ms']:.1f})"


def report(res: dict) -> list[str]:
    short, full = "blazeface", "blazeface-full"
    ph, lf, sp = res["photos"], res["lfw"], res["speed"]
    lines = [
        "# BlazeFace short-range vs full-range",
        "",
        f"Command: `{res['command']}` ({res['seconds']:.0f} s). Machine: {res['machine']}, shared (load "
        f"average {res['load_average'][0]:.1f} at the end). Threshold {THRESHOLD} "
        "(`face.blazeface_threshold`). A face counts as found when a box centre lies within a quarter of "
        "the image's side of the named person's (the image centre).",
        "",
        "| measure | short-range (`blazeface`) | full-range (`blazeface_full`) |",
        "| --- | --- | --- |",
        f"| faces found on the 25 real photos | {ph['faces'][short]} | {ph['faces'][full]} |",
        f"| of those, faces the short-range model misses | | {len(ph['missed'])} |",
        f"| lfw-dev ({res['lfw_images']} images), centre face found | {_pct(lf[short]['native'])} | "
        f"{_pct(lf[full]['native'])} |",
    ]
    for side in FAR_SIDES:
        where = f"face ~{0.45 * side:.0f} px, {45 * side / FRAME[1]:.1f} % of the frame's width"
        lines.append(
            f"| same, shrunk to {side} px ({where}) in a 1280x720 frame | {_pct(lf[short][str(side)])} | "
            f"{_pct(lf[full][str(side)])} |"
        )
    for name, key in (("real photo (330x512 to 2500x1728)", "photos"), ("lfw-dev image (250x250)", "lfw")):
        lines.append(
            f"| ms per {name}: median (p90), 1 thread | {_ms(sp[key][short])} | {_ms(sp[key][full])} |"
        )
    lines.append(
        "\nFar faces the full-range model finds and the short-range misses, e.g.: "
        + "; ".join(lf["short_missed"][:: len(FAR_SIDES)][:6])
        + " (lfw-dev file, side in the frame)."
    )
    for m in ph["missed"]:
        lines.append(
            f"\nMissed by short-range: {m['photo']} box {m['box']} ({m['side']} px): ![]({m['shot']})"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    ap.add_argument("--every", type=int, default=4, help="every n-th lfw-dev image")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    ops = {n: BlazeFaceOp(load_bundle(args.models / n / "1"), RuntimeSpec(threads=1)) for n in NAMES}
    for op in ops.values():
        op.setup()
    photo_files = sorted((args.data / "photos").glob("*.jpg"), key=lambda p: int(p.stem[3:]))
    lfw_files = sorted((args.data / "lfw-dev/images").glob("*/*.jpg"))[:: args.every]
    t0 = time.perf_counter()
    res = {
        "photos": photos(ops, photo_files),
        "lfw": lfw(ops, lfw_files),
        "lfw_images": len(lfw_files),
    }
    res["speed"] = {
        "photos": speed(ops, photo_files, args.rounds),
        "lfw": speed(ops, lfw_files[:200], args.rounds),
    }
    res["seconds"] = time.perf_counter() - t0
    res["machine"] = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores"
    res["command"] = "python bench/detectors.py " + " ".join(sys.argv[1:])
    res["load_average"] = os.getloadavg()
    (ROOT / "bench/results/detectors.json").write_text(json.dumps(res, indent=1))
    (ROOT / "bench/results/detectors.md").write_text("\n".join(report(res)) + "\n")
    print(
        json.dumps(
            {k: v for k, v in res.items() if k != "photos"}
            | {"photos": {k: v for k, v in res["photos"].items() if k != "boxes"}},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
