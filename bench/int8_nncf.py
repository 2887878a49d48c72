"""Accuracy-aware int8 MobileFaceNet with NNCF (``quantize_with_accuracy_control``, ONNX backend): the
int8 graph is calibrated, then the layers whose int8 costs the most are put back to float until the
validation metric is within ``--max-drop`` of fp32.

No lfw-dev image is used here: lfw-dev is the test (bench/cpu_runtimes.py scores the result on it).
Calibration and validation crops come from /work/shared/data/photos (25 photos of 9 people, none in
LFW): every face the server's own MTCNN finds there, aligned by the server's own 5-point alignment,
then multiplied by augmentation (mirror image, landmarks jittered by up to 2 px, brightness x0.8-1.2),
with different random draws for the calibration and the validation sets. Validation metric: the mean
cosine between the candidate's embeddings and fp32's on the validation crops (fp32 scores 1.0); its
per-crop values rank the layers.

Writes ``<out>/<name>/model.onnx`` for each variant and ``<out>/int8-nncf.json`` (what was done).

    .venv/bin/python bench/int8_nncf.py [--out /tmp/int8] [--max-drop 0.002,0.0005]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from facepipe.face.align import align  # noqa: E402
from facepipe.face.detect_mtcnn import MtcnnDetector  # noqa: E402
from facepipe.face.faces import DetectParams  # noqa: E402
from facepipe.models.bundle import load_bundle  # noqa: E402
from facepipe.runtime import RuntimeSpec  # noqa: E402


def photo_faces(photos: Path, models: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB photo, 5 landmarks) for every face MTCNN finds (fp32, the server's detector)."""
    nets = [load_bundle(models / n / "1") for n in ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet")]
    detector = MtcnnDetector(*nets, RuntimeSpec(precision="fp32"))
    out = []
    for f in sorted(photos.glob("*.jpg")):
        rgb = cv2.imread(str(f))[..., ::-1].copy()
        for face in detector.detect([rgb], [DetectParams(min_face_size=40.0)])[0]:
            out.append((rgb, face.landmarks))
    return out


def augmented(faces: list[tuple[np.ndarray, np.ndarray]], n: int, seed: int) -> np.ndarray:
    """``n`` aligned crops as the model's input: random face, mirrored or not, landmarks jittered,
    brightness scaled."""
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(n):
        rgb, pts = faces[rng.integers(len(faces))]
        crop = align(rgb, pts + rng.uniform(-2, 2, pts.shape))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crops.append(np.clip(crop.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255))
    return ((np.stack(crops) - 127.5) / 128.0).astype(np.float32)


def ov_embed(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """Embeddings by OpenVINO (the runtime that serves it), unit length."""
    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        path.write_bytes(model_bytes)
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    out = np.concatenate([compiled(x[i : i + 32])[0] for i in range(0, len(x), 32)])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def main() -> None:
    import nncf
    import onnx

    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared/data/photos")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "facepipe-int8")
    ap.add_argument("--max-drop", default="0.002,0.0005", help="validation metric drops to try")
    ap.add_argument("--calibration", type=int, default=300)
    ap.add_argument("--validation", type=int, default=200)
    args = ap.parse_args()
    bundle = load_bundle(args.models / "mobilefacenet" / "1")
    faces = photo_faces(args.photos, args.models)
    calib, valid = augmented(faces, args.calibration, 1), augmented(faces, args.validation, 2)
    fp32 = onnx.load(str(bundle.model_path))
    reference = ov_embed(fp32.SerializeToString(), valid)

    def validate(model: onnx.ModelProto, data: object) -> tuple[float, list[float]]:
        cos = np.sum(ov_embed(model.SerializeToString(), valid) * reference, axis=1)
        return float(np.mean(cos)), [float(c) for c in cos]

    feed = fp32.graph.input[0].name
    calibration = nncf.Dataset(list(calib[:, None]), lambda x: {feed: x})
    validation = nncf.Dataset([0])  # validate() reads every validation crop itself
    report: dict = {"faces": len(faces), "calibration": len(calib), "validation": len(valid), "runs": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plain = nncf.quantize(fp32, calibration, subset_size=len(calib))
    report["runs"]["int8 nncf ptq"] = {
        "seconds": time.perf_counter() - t0,
        "metric": validate(plain, None)[0],
    }
    save(plain, args.out / "int8 nncf ptq")
    report["quantize_nodes_ptq"] = sum(n.op_type == "QuantizeLinear" for n in plain.graph.node)
    (args.out / "int8-nncf.json").write_text(json.dumps(report, indent=2))  # after every model
    for drop in (float(d) for d in args.max_drop.split(",")):
        t0 = time.perf_counter()
        model = nncf.quantize_with_accuracy_control(
            fp32, calibration, validation, validate, max_drop=drop, subset_size=len(calib)
        )
        name = f"int8 nncf aac {drop:g}"
        kept = sum(n.op_type == "QuantizeLinear" for n in model.graph.node)
        report["runs"][name] = {
            "seconds": time.perf_counter() - t0,
            "metric": validate(model, None)[0],
            "quantize_nodes": kept,
        }
        save(model, args.out / name)
        print(name, report["runs"][name], flush=True)
        (args.out / "int8-nncf.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


def save(model: object, folder: Path) -> None:
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))


if __name__ == "__main__":
    main()
