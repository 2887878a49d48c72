"""dlib's CNN face detector (``mmod_human_face_detector.dat``, CC0 per dlib-models, shipped in PyPI
face_recognition_models) measured the way bench/detectors.py measures the BlazeFace models, through
dlib-bin (a test-only tool; facepipe does not serve this detector): recall on the photos, on lfw-dev
and on far faces, and ms per image. Writes bench/results/detectors-dlib-cnn.{json,md}.

    nice -n 10 .venv/bin/python bench/detectors_dlib_cnn.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.detectors import FAR_SIDES, FRAME, centre_found, rgb  # noqa: E402
from bench.dlib_embedder import dlib_files  # noqa: E402

SIDES = FAR_SIDES[1:5]  # 320 .. 160 px: where the BlazeFace models part ways


@dataclass(slots=True)
class Found:
    box: tuple[float, float, float, float]


class DlibCnn:
    """dlib's MMOD CNN detector with BlazeFaceOp's ``detect`` shape (no upsampling: faces from ~40 px)."""

    def __init__(self) -> None:
        import dlib

        self.net = dlib.cnn_face_detection_model_v1(str(dlib_files() / "mmod_human_face_detector.dat"))

    def detect(self, images: list[np.ndarray], _thresholds: list[float]) -> list[list[Found]]:
        out = []
        for img in images:
            dets = self.net(img, 0)
            out.append([Found((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom())) for d in dets])
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    ap.add_argument("--every", type=int, default=120, help="every n-th lfw-dev image")
    args = ap.parse_args()
    det = DlibCnn()
    photo_files = sorted((args.data / "photos").glob("*.jpg"), key=lambda p: int(p.stem[3:]))
    lfw_files = sorted((args.data / "lfw-dev/images").glob("*/*.jpg"))[:: args.every]
    t0 = time.perf_counter()
    res: dict = {"lfw_images": len(lfw_files)}
    times = []
    faces = 0
    for f in photo_files:
        img = rgb(f)
        t1 = time.perf_counter()
        faces += len(det.detect([img], [0])[0])
        times.append(time.perf_counter() - t1)
        print(f"{f.name}: {times[-1]:.1f} s", file=sys.stderr, flush=True)
    res["photos"] = {"faces": faces, "median_ms": 1000 * float(np.median(times))}
    rng = np.random.default_rng(0)
    lfw_times = []
    hits = {"native": 0} | {str(s): 0 for s in SIDES}
    for f in lfw_files:
        img = rgb(f)
        t1 = time.perf_counter()
        hits["native"] += centre_found(det, img, (img.shape[1] / 2, img.shape[0] / 2), float(img.shape[0]))
        lfw_times.append(time.perf_counter() - t1)
        for side in SIDES:
            frame = np.full((*FRAME, 3), 96, np.uint8)
            x, y = int(rng.integers(0, FRAME[1] - side)), int(rng.integers(0, FRAME[0] - side))
            frame[y : y + side, x : x + side] = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
            hits[str(side)] += centre_found(det, frame, (x + side / 2, y + side / 2), float(side))
    res["lfw"] = {k: v / len(lfw_files) for k, v in hits.items()}
    res["lfw_median_ms"] = 1000 * float(np.median(lfw_times))
    res["seconds"] = time.perf_counter() - t0
    res["load_average"] = os.getloadavg()
    res["command"] = "python bench/detectors_dlib_cnn.py " + " ".join(sys.argv[1:])
    out = ROOT / "bench/results"
    (out / "detectors-dlib-cnn.json").write_text(json.dumps(res, indent=1))
    lines = [
        "# dlib's CNN face detector (mmod_human_face_detector.dat, CC0), through dlib-bin",
        "",
        f"Command: `{res['command']}` ({res['seconds']:.0f} s; load average {res['load_average'][0]:.1f}). "
        "Measured as bench/detectors.md measures BlazeFace (same frames, same rule); no upsampling.",
        "",
        "| measure | dlib CNN |",
        "| --- | --- |",
        f"| faces found on the 25 real photos | {faces} |",
        f"| lfw-dev ({len(lfw_files)} images), centre face found | {100 * res['lfw']['native']:.1f} % |",
    ]
    for side in SIDES:
        lines.append(
            f"| same, shrunk to {side} px in a 1280x720 frame | {100 * res['lfw'][str(side)]:.1f} % |"
        )
    lines += [
        f"| ms per real photo, median | {res['photos']['median_ms']:.0f} |",
        f"| ms per lfw-dev image (250x250), median | {res['lfw_median_ms']:.0f} |",
    ]
    (out / "detectors-dlib-cnn.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
