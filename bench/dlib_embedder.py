"""The clean pack's dlib embedder (``dlib-resnet``, converted by facepipe) on lfw-dev: verification
accuracy over the 3,000 pairs, parity with dlib itself on real chips, and speed against dlib-bin.

Faces are found and landmarked by dlib-bin (HOG detector, shape_predictor_5: test-only tools, not
part of the product), cut with facepipe's own dlib chip (face/align.py: dlib_chip, pixel-identical to
dlib.get_face_chip) and embedded through onnxruntime. Writes bench/results/dlib-embedder.{json,md}.

    .venv/bin/python bench/dlib_embedder.py --models ./models   # after `facepipe models pull clean`
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from facepipe.face.align import dlib_chip  # noqa: E402
from facepipe.face.embed import to_tensor  # noqa: E402
from facepipe.models.bundle import Bundle, load_bundle  # noqa: E402
from facepipe.tools.evaluation import best_threshold, kfold_accuracy, read_lfw_pairs, tar_at_far  # noqa: E402

PARITY_CHIPS = 200
CHAINS = {
    "dlib": "`bench/dlib_embedder.py --chain dlib`: dlib-bin's HOG detector + shape_predictor_5 for\n"
    "landmarks (test-only tools), facepipe's dlib chip (150x150, padding 0.25), the converted ONNX model\n"
    "through onnxruntime (1 thread). The face nearest the image centre is the subject.",
    "facepipe": "`bench/dlib_embedder.py --chain facepipe`: /v1's clean chain, no dlib code: BlazeFace (the\n"
    "face nearest the centre), its box moved to a HOG-style box, facepipe's dlib landmarks and chip, the\n"
    "converted ONNX model through onnxruntime (1 thread).",
}


def dlib_files() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install face_recognition_models dlib-bin (the dev extra)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def chips(images: Path, files: list[str]) -> tuple[dict[str, np.ndarray], int]:
    """File -> dlib chip of the centre face; where HOG finds none, the centre box LFW's crops put it in."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_files() / "shape_predictor_5_face_landmarks.dat"))
    out, missed = {}, 0
    for name in files:
        img = dlib.load_rgb_image(str(images / name))
        # LFW faces (~110 px) are above HOG's 80 px: upsample only when the plain pass finds none.
        # The subject of an LFW image is the face at its centre (others may be larger).
        h, w = img.shape[:2]

        def off_centre(d: dlib.rectangle, w: int = w, h: int = h) -> int:
            return int((d.center().x - w // 2) ** 2 + (d.center().y - h // 2) ** 2)

        dets = sorted(detector(img, 0) or detector(img, 1), key=off_centre)
        if not dets:
            missed += 1
        box = dets[0] if dets else dlib.rectangle(70, 70, 180, 180)
        shape = predictor(img, box)
        out[name] = dlib_chip(img, np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64))
    return out, missed


def facepipe_chips(models: Path, images: Path, files: list[str]) -> tuple[dict[str, np.ndarray], int]:
    """The /v1 chain with no dlib code: BlazeFace box (the face nearest the centre) -> HOG-style box ->
    facepipe's dlib landmarks -> facepipe's dlib chip; no face found: the same centre box as above."""
    import cv2

    from facepipe.face.detect_blazeface import BlazeFaceOp
    from facepipe.face.faces import DetectParams, Photo
    from facepipe.face.landmarks_dlib import hog_box, predict
    from facepipe.models.convert.dlib_shape import load_shape_model

    detector = BlazeFaceOp(load_bundle(models / "blazeface" / "1"))
    detector.setup()
    bundle = load_bundle(models / "dlib-resnet" / "1")
    shape = load_shape_model(bundle.path / bundle.manifest.extra["landmarks"]["file"])
    out, missed = {}, 0
    for name in files:
        img = cv2.cvtColor(cv2.imread(str(images / name)), cv2.COLOR_BGR2RGB)
        faces = detector([Photo(img, DetectParams(min_face_size=20))])[0].faces
        h, w = img.shape[:2]

        def off_centre(f: object, w: int = w, h: int = h) -> float:
            x1, y1, x2, y2 = f.box  # type: ignore[attr-defined]
            return float(((x1 + x2) / 2 - w / 2) ** 2 + ((y1 + y2) / 2 - h / 2) ** 2)

        missed += not faces
        box = hog_box(min(faces, key=off_centre).box, "blazeface") if faces else (70, 70, 180, 180)
        out[name] = dlib_chip(img, predict(shape, img, box))
    return out, missed


def embed(sess, bundle: Bundle, crops: list[np.ndarray], batch: int = 16) -> np.ndarray:  # type: ignore[no-untyped-def]
    name = sess.get_inputs()[0].name
    outs = [
        sess.run(None, {name: to_tensor(crops[i : i + batch], bundle)})[0]
        for i in range(0, len(crops), batch)
    ]
    return np.concatenate(outs).astype(np.float64)


def speed(sess, bundle: Bundle, crops: list[np.ndarray]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import dlib

    rec = dlib.face_recognition_model_v1(str(dlib_files() / "dlib_face_recognition_resnet_model_v1.dat"))
    out = {}
    for label, fn in (
        ("onnx_batch1_ms", lambda: [embed(sess, bundle, [c], 1) for c in crops]),
        ("onnx_batch16_ms", lambda: embed(sess, bundle, crops, 16)),
        ("dlib_ms", lambda: [rec.compute_face_descriptor(c) for c in crops]),
    ):
        fn()  # warm
        t0 = time.perf_counter()
        fn()
        out[label] = (time.perf_counter() - t0) * 1000 / len(crops)
    return out


def parity(emb: np.ndarray, crops: list[np.ndarray]) -> dict[str, float]:
    import dlib

    rec = dlib.face_recognition_model_v1(str(dlib_files() / "dlib_face_recognition_resnet_model_v1.dat"))
    want = np.array([rec.compute_face_descriptor(c) for c in crops], dtype=np.float64)
    cos = (emb * want).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(want, axis=1)
    return {
        "chips": len(crops),
        "min_cosine": float(cos.min()),
        "max_abs_diff": float(np.abs(emb - want).max()),
    }


def measure(models: Path, data: Path, folds: int, chain: str) -> dict:
    import onnxruntime as ort

    bundle = load_bundle(models / "dlib-resnet" / "1")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(bundle.model_path), opts, providers=["CPUExecutionProvider"])
    pairs = [p for p in read_lfw_pairs(data / "lfw-dev" / "pairs.txt") if p.fold < folds]
    files = sorted({p.left for p in pairs} | {p.right for p in pairs})
    t0 = time.perf_counter()
    if chain == "facepipe":
        by_file, missed = facepipe_chips(models, data / "lfw-dev" / "images", files)
    else:
        by_file, missed = chips(data / "lfw-dev" / "images", files)
    emb = dict(zip(files, embed(sess, bundle, [by_file[f] for f in files]), strict=True))
    left = np.stack([emb[p.left] for p in pairs])
    right = np.stack([emb[p.right] for p in pairs])
    labels = np.array([p.same for p in pairs])
    cos = (left * right).sum(1) / np.linalg.norm(left, axis=1) / np.linalg.norm(right, axis=1)
    dist = np.linalg.norm(left - right, axis=1)
    kf = kfold_accuracy(cos, labels, np.array([p.fold for p in pairs]))
    tar, far_t = tar_at_far(cos, labels, 1e-3)
    some = [by_file[f] for f in files[:: max(1, len(files) // PARITY_CHIPS)][:PARITY_CHIPS]]
    return {
        "pairs": len(pairs),
        "folds": len({p.fold for p in pairs}),
        "chain": chain,
        "images": len(files),
        "hog_missed": missed,
        "accuracy": kf.mean,
        "accuracy_std": kf.std,
        "tar_at_far_0.001": tar,
        "threshold_at_far_0.001": far_t,
        "best_cosine_threshold": best_threshold(cos, labels),
        "accuracy_at_dlib_distance_0.6": float(((dist < 0.6) == labels).mean()),
        "parity": parity(embed(sess, bundle, some), some),
        "speed_ms_per_face": speed(sess, bundle, some[:32]),
        "seconds": time.perf_counter() - t0,
    }


def report(r: dict) -> str:
    s, p = r["speed_ms_per_face"], r["parity"]
    return "\n".join(
        [
            "# dlib-resnet (clean pack) on lfw-dev",
            "",
            CHAINS[r["chain"]],
            "",
            "| measure | value |",
            "| --- | --- |",
            f"| {r['pairs']} pairs, {r['folds']}-fold accuracy (cosine, LFW protocol) | "
            f"{100 * r['accuracy']:.2f} % "
            f"± {100 * r['accuracy_std']:.2f} |",
            f"| accuracy at dlib's own rule (distance < 0.6) | "
            f"{100 * r['accuracy_at_dlib_distance_0.6']:.2f} % |",
            f"| TAR at FAR 1e-3 | {100 * r['tar_at_far_0.001']:.1f} % "
            f"(cosine ≥ {r['threshold_at_far_0.001']:.3f}) |",
            f"| accuracy-optimal cosine threshold (all pairs) | {r['best_cosine_threshold']:.3f} |",
            f"| images where the detector found no face (centre box used) | "
            f"{r['hog_missed']} of {r['images']} |",
            f"| parity with dlib-bin on {p['chips']} chips: min cosine / max abs diff | "
            f"{p['min_cosine']:.8f} / {p['max_abs_diff']:.1e} |",
            f"| ms per face: ONNX batch 1 / batch 16 / dlib-bin | {s['onnx_batch1_ms']:.1f} / "
            f"{s['onnx_batch16_ms']:.1f} / {s['dlib_ms']:.1f} |",
            "",
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with "
            "other work: the ms per face are dominated by that load, not a comparison.",
            "",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    ap.add_argument("--folds", type=int, default=5, help="the first N folds of lfw-dev (5: all)")
    ap.add_argument(
        "--chain", choices=("dlib", "facepipe"), default="dlib", help="landmarks: dlib-bin's, or /v1's own"
    )
    args = ap.parse_args()
    result = measure(args.models, args.data, args.folds, args.chain)
    out = ROOT / "bench" / "results"
    stem = "dlib-embedder" if args.chain == "dlib" else "dlib-embedder-v1"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    (out / f"{stem}.md").write_text(report(result))
    sys.stdout.write(report(result))


if __name__ == "__main__":
    main()
