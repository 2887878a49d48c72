"""Which CPU runtime serves MobileFaceNet fastest without changing its answers: onnxruntime, OpenVINO
fp32, OpenVINO bf16, an int8 (QDQ, per-channel, calibrated on 200 lfw-dev crops) model on both, and
NNCF's int8 models (bench/int8_nncf.py: plain and accuracy-aware, calibrated on photos/ faces, no
lfw-dev image) where ``--int8`` holds them.

Throughput: ``workers`` sessions of 1 thread side by side (the server's layout) at batch 1/4/8, and
1 session of all cores, ``--runs`` times (rounds over every runtime, so contention falls on all);
latency of a batch of 1. Correctness: cosine against onnxruntime fp32 on the aligned lfw-dev faces,
and lfw-dev k-fold accuracy (reference landmarks, so only the runtime differs). With
``--serve-seconds``: the seed endpoint at c=16 at fp32 and auto (bench/serve_precision.py).
Writes bench/results/cpu-runtimes.{json,md}.

    .venv/bin/python bench/cpu_runtimes.py [--seconds 3] [--runs 2] [--int8 /tmp/facepipe-int8]
        [--serve-seconds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bare import Run, batch1_p50_ms, rate, runner  # noqa: E402
from facepipe.face.align import align  # noqa: E402
from facepipe.models.bundle import MODEL_FILE, Bundle, load_bundle  # noqa: E402
from facepipe.tools.eval_server import reference_landmarks  # noqa: E402
from facepipe.tools.evaluation import kfold_accuracy, read_lfw_pairs  # noqa: E402


def crops(lfw: Path) -> tuple[list[str], np.ndarray]:
    """Every lfw-dev image aligned with its reference landmarks, as the model's input tensor."""
    ref = reference_landmarks(lfw / "landmarks_mtcnn.tsv")
    files = sorted(ref)
    faces = [align(cv2.imread(str(lfw / "images" / f))[..., ::-1], ref[f]) for f in files]
    return files, ((np.stack(faces).astype(np.float32) - 127.5) / 128.0).astype(np.float32)


def quantized(model: Path, calibration: np.ndarray, out: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calibration[:, None])

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {"input": x}

    quantize_static(
        str(model),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    return out


def embed(run: Run, x: np.ndarray) -> np.ndarray:
    e = np.concatenate([run(x[i : i + 64]) for i in range(0, len(x), 64)])
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def speed(make: Callable[[int], Run], x: np.ndarray, seconds: float) -> dict:
    cores = os.cpu_count() or 1
    out = {
        f"{cores}x1thr_b{b}_img_s": rate([make(1) for _ in range(cores)], x[:b], seconds) for b in (1, 4, 8)
    }
    out[f"1x{cores}thr_b8_img_s"] = rate([make(cores)], x[:8], seconds)
    return out


def measure(
    make: Callable[[int], Run], x: np.ndarray, reference: np.ndarray | None, lfw
) -> tuple[dict, np.ndarray]:
    """Latency, cosine to the reference and lfw-dev accuracy (throughput: ``speed``, in rounds)."""
    out: dict = {}
    one = make(1)
    out["batch1_1thr_ms_p50"] = batch1_p50_ms(one, x[:64], 200)
    emb = embed(one, x)
    if reference is not None:
        out["min_cosine_to_onnxruntime_fp32"] = float(np.min(np.sum(emb * reference, axis=1)))
    files, pairs = lfw
    index = {f: i for i, f in enumerate(files)}
    scores = np.array([emb[index[p.left]] @ emb[index[p.right]] for p in pairs])
    labels = np.array([p.same for p in pairs])
    out["lfw_dev_accuracy"] = kfold_accuracy(scores, labels, np.array([p.fold for p in pairs])).mean
    return out, emb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=2, help="throughput rounds over every runtime")
    ap.add_argument("--int8", type=Path, help="bench/int8_nncf.py's --out: its models join the table")
    ap.add_argument("--serve-seconds", type=float, default=0.0, help="seed endpoint at c=16; 0: skip")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/lfw-dev")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    args = ap.parse_args()
    bundle = load_bundle(args.models / "mobilefacenet" / "1")
    files, x = crops(args.data)
    pairs = [p for p in read_lfw_pairs(args.data / "pairs.txt") if p.left in files and p.right in files]
    with tempfile.TemporaryDirectory() as tmp:
        quantized(bundle.model_path, x[:: max(1, len(x) // 200)][:200], Path(tmp) / MODEL_FILE)
        q8 = Bundle(Path(tmp), bundle.manifest)  # same manifest, the int8 graph
        candidates: dict[str, Callable[[int], Run]] = {
            "onnxruntime fp32": lambda t: runner(bundle, t, "onnxruntime"),
            "openvino fp32": lambda t: runner(bundle, t, "openvino"),
            "openvino bf16": lambda t: runner(bundle, t, "openvino", "bf16"),
            "onnxruntime int8": lambda t: runner(q8, t, "onnxruntime"),
            "openvino int8": lambda t: runner(q8, t, "openvino"),
        }
        for folder in sorted(args.int8.iterdir()) if args.int8 else []:
            if (folder / MODEL_FILE).is_file():
                nncf = Bundle(folder, bundle.manifest)
                candidates[f"openvino {folder.name}"] = lambda t, b=nncf: runner(b, t, "openvino")
        results, reference = {}, None
        for name, make in candidates.items():
            results[name], emb = measure(make, x, reference, (files, pairs))
            reference = emb if reference is None else reference
            print(name, json.dumps(results[name]), flush=True)
        for r in range(args.runs):
            for name, make in candidates.items():
                results[name].setdefault("runs", []).append(speed(make, x, args.seconds))
                print(f"round {r + 1}", name, json.dumps(results[name]["runs"][-1]), flush=True)
    serving = None
    if args.serve_seconds > 0:
        from bench.serve_precision import rounds

        images = sorted((args.data / "images").rglob("*.jpg"))[:700]
        serving = rounds(args.models, bundle, images, x, args.runs, args.serve_seconds)
    write(results, serving, args, len(files), len(pairs))


def spread(r: dict, key: str) -> str:
    """Mean of the runs, and their range."""
    v = [run[key] for run in r["runs"]]
    return f"{np.mean(v):.0f} ({min(v):.0f}-{max(v):.0f})"


def write(results: dict, serving: dict | None, args: argparse.Namespace, images: int, pairs: int) -> None:
    import onnxruntime
    import openvino

    cores = os.cpu_count() or 1
    machine = f"{platform.node()} {platform.machine()}, {cores} cores, {cpu_model()}"
    command = "python bench/cpu_runtimes.py " + " ".join(sys.argv[1:])
    versions = {"onnxruntime": onnxruntime.__version__, "openvino": openvino.__version__}
    caps = [str(c) for c in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    doc = {"machine": machine, "command": command, "versions": versions, "images": images, "pairs": pairs}
    doc["openvino_cpu_capabilities"] = caps
    out = ROOT / "bench/results"
    (out / "cpu-runtimes.json").write_text(
        json.dumps({**doc, "runtimes": results, "serving": serving}, indent=2)
    )
    runs = len(next(iter(results.values()))["runs"])
    lines = [
        "# CPU runtimes for MobileFaceNet",
        "",
        f"Machine: {machine}; OpenVINO's CPU capabilities: {', '.join(caps)}. Command: `{command}`. "
        f"Versions: {versions}. The cores may be shared with other work (1/5/15-min load average when "
        f"this was written: {', '.join(f'{v:.1f}' for v in os.getloadavg())}): throughput is the mean of "
        f"{runs} rounds over every runtime, with the range in brackets.",
        f"Throughput: {cores} single-thread sessions side by side (the server's default layout) or one "
        f"{cores}-thread session; correctness on {images} lfw-dev faces aligned with the reference "
        f"landmarks ({pairs} pairs), so only the runtime differs. *nncf* rows: bench/int8_nncf.py "
        "(calibrated on photos/ faces, none from lfw-dev; *ptq*: plain int8, *aac D*: accuracy-aware, "
        "layers put back to float until the validation cosine to fp32 is within D).",
        "",
        f"| runtime | b1 img/s | b4 img/s | b8 img/s | 1x{cores}thr b8 | b1 latency ms | min cosine to "
        "onnxruntime fp32 | lfw-dev accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        cos = r.get("min_cosine_to_onnxruntime_fp32", 1.0)
        cols = [f"{cores}x1thr_b1_img_s", f"{cores}x1thr_b4_img_s", f"{cores}x1thr_b8_img_s"]
        cols.append(f"1x{cores}thr_b8_img_s")
        lines.append(
            f"| {name} | {' | '.join(spread(r, c) for c in cols)} | {r['batch1_1thr_ms_p50']:.2f} | "
            f"{cos:.6f} | {100 * r['lfw_dev_accuracy']:.2f} % |"
        )
    base = results["onnxruntime fp32"]
    rate_of = {k: np.mean([x[f"{cores}x1thr_b4_img_s"] for x in r["runs"]]) for k, r in results.items()}
    kept = [k for k, r in results.items() if base["lfw_dev_accuracy"] - r["lfw_dev_accuracy"] <= 0.001]
    dropped = [k for k in results if k not in kept]
    lines += [
        "",
        "Rule: a runtime may change the answers only if lfw-dev accuracy drops by at most 0.1 point. "
        f"Within it: {', '.join(kept)}; out: {', '.join(dropped) or 'none'}.",
        f"Fastest within the rule: **{max(kept, key=rate_of.__getitem__)}**. The default (`engine: auto`, "
        "`precision: auto`) is OpenVINO at bf16 where the CPU lists BF16 and the bundle's golden outputs "
        "hold at cosine >= 0.999 under bf16, OpenVINO fp32 otherwise (runtime/precision.py).",
    ]
    if serving:
        from bench.serve_precision import lines as serving_lines

        lines += serving_lines(serving)
    (out / "cpu-runtimes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?"
    )
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    return f"{model} ({', '.join(f for f in flags if 'bf16' in f or 'amx' in f) or 'no bf16 flags'})"


if __name__ == "__main__":
    main()
