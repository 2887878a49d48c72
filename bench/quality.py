"""The quality score and the liveness gate, measured through a running server on real faces.
Writes bench/results/quality.{json,md}.

    nice -n 10 .venv/bin/python bench/quality.py [--url http://127.0.0.1:9998]   # default: starts one

1. Monotonic: the first image of ``--mono`` lfw-dev people, degraded on purpose (bench/degrade.py: blur,
   downscale, roll, yaw), each level through ``POST /v1/detect``: the score of the face nearest the
   centre, per level (mean, std), and how many images' scores never rose from one level to the next.
2. Accuracy by quality: every lfw-dev pair as it is, and the pairs of folds 1-2 with the second image
   degraded (a seeded random degradation and level); each image through ``POST /v1/embed``; a pair's
   quality is the lower of its two faces'; accuracy at the server's verify threshold above and below
   ``enrol.min_quality`` (Wilson 95 % intervals).
3. Liveness: the share of real faces (every face of the photos set, and lfw-dev images) whose
   anti-spoofing score is above the model's ``spoof_above`` (false refusals of ``require_live``), and
   the share of spoof-like proxies (bench/degrade.py: ``screen``, ``print_like``, blur) refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import degrade  # noqa: E402
from facepipe.config import EnrolConfig  # noqa: E402
from facepipe.tools.eval_server import pick_face, reference_landmarks, server_threshold  # noqa: E402
from facepipe.tools.evaluation import read_lfw_pairs  # noqa: E402
from tests.integration.conftest import start_server, stop_server  # noqa: E402

Image = np.ndarray
MIN_QUALITY = EnrolConfig().min_quality


def jpeg(rgb: Image) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[
        1
    ].tobytes()


def load(path: Path) -> Image:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


async def faces_of(url: str, images: list[bytes], route: str, params: dict[str, str]) -> list[list[dict]]:
    """Every image through ``route`` (4 at a time); per image, the result document's faces with the
    face nearest the centre first."""
    sem = asyncio.Semaphore(4)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def one(data: bytes) -> list[dict]:
            async with sem:
                r = await client.post(
                    route, params=params, content=data, headers={"content-type": "image/jpeg"}
                )
            r.raise_for_status()
            result = r.json()["results"][0]
            best = pick_face(result, "centre")
            return [] if best is None else [best] + [f for f in result["faces"] if f is not best]

        return list(await asyncio.gather(*(one(d) for d in images)))


def score(faces: list[dict]) -> float | None:
    return faces[0]["quality"]["score"] if faces else None


def monotonic(url: str, lfw: Path, n: int) -> dict[str, Any]:
    ref = reference_landmarks(lfw / "landmarks_mtcnn.tsv")
    files = [f for f in sorted(ref) if f.endswith("_0001.jpg")][:: max(1, 1000 // n)][:n]
    images = [load(lfw / "images" / f) for f in files]
    small = {"min_face_size": "20"}  # downscaled faces stay detectable down to 20 px
    base = asyncio.run(faces_of(url, [jpeg(im) for im in images], "/v1/detect", small))
    out: dict[str, Any] = {}
    for name, (fn, levels) in degrade.DEGRADATIONS.items():
        jobs = []
        for f, im, found in zip(files, images, base, strict=True):
            sign = 1.0
            if name in ("roll", "yaw") and found:  # away from upright / frontal, whichever way it leans
                lean = found[0]["quality"][name]
                sign = (-1.0 if lean > 0 else 1.0) if name == "roll" else (1.0 if lean >= 0 else -1.0)
            for level in levels:
                if name == "yaw":
                    jobs.append(jpeg(fn(im, sign * level, ref[f])))
                else:
                    jobs.append(jpeg(fn(im, sign * level if name == "roll" else level)))
        got = asyncio.run(faces_of(url, jobs, "/v1/detect", small))
        rows = np.array(
            [[score(got[i * len(levels) + j]) or 0.0 for j in range(len(levels))] for i in range(n)]
        )
        missing = [sum(1 for i in range(n) if not got[i * len(levels) + j]) for j in range(len(levels))]
        never_rose = int(np.sum(np.all(np.diff(rows, axis=1) <= 1e-9, axis=1)))
        out[name] = {
            "levels": list(levels),
            "mean": rows.mean(0).round(4).tolist(),
            "std": rows.std(0).round(4).tolist(),
            "no_face": missing,
            "images": n,
            "never_rose": never_rose,
        }
    return out


def wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p, z = k / n, 1.96
    mid, half = (
        (p + z * z / (2 * n)) / (1 + z * z / n),
        z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n),
    )
    return (round(float(mid - half), 4), round(float(mid + half), 4))


def split(pairs: list[tuple[float, float, bool]], threshold: float, cut: float) -> dict[str, Any]:
    """Accuracy at ``threshold`` of pairs whose quality is >= ``cut`` and < ``cut``."""
    out: dict[str, Any] = {}
    for side, keep in (("above", lambda q: q >= cut), ("below", lambda q: q < cut)):
        chosen = [(s, same) for q, s, same in pairs if keep(q)]
        right = sum(1 for s, same in chosen if (s >= threshold) == same)
        acc = right / len(chosen) if chosen else 0.0
        out[side] = {"pairs": len(chosen), "accuracy": round(acc, 4), "ci95": wilson(right, len(chosen))}
    return out


def accuracy(url: str, lfw: Path, n_degraded: int, seed: int = 24) -> dict[str, Any]:
    pairs = read_lfw_pairs(lfw / "pairs.txt")
    files = sorted({p.left for p in pairs} | {p.right for p in pairs})
    got = dict(
        zip(
            files,
            asyncio.run(faces_of(url, [(lfw / "images" / f).read_bytes() for f in files], "/v1/embed", {})),
            strict=True,
        )
    )
    ref = reference_landmarks(lfw / "landmarks_mtcnn.tsv")
    rng = random.Random(seed)
    chosen = pairs[:n_degraded]
    plan = []
    for _ in chosen:
        name = rng.choice(list(degrade.DEGRADATIONS))
        plan.append((name, rng.choice(degrade.DEGRADATIONS[name][1][1:])))
    imgs = []
    for p, (name, level) in zip(chosen, plan, strict=True):
        im = load(lfw / "images" / p.right)
        fn = degrade.DEGRADATIONS[name][0]
        imgs.append(jpeg(fn(im, level, ref[p.right]) if name == "yaw" else fn(im, level)))
    worse = asyncio.run(faces_of(url, imgs, "/v1/embed", {}))
    dim = next(len(f[0]["embedding"]) for f in got.values() if f)
    threshold = server_threshold(url, dim)

    def pair(a: list[dict], b: list[dict], same: bool) -> tuple[float, float, bool] | None:
        if not a or not b:
            return None
        sim = float(np.dot(a[0]["embedding"], b[0]["embedding"]))
        return min(a[0]["quality"]["score"], b[0]["quality"]["score"]), sim, same

    real = [pair(got[p.left], got[p.right], p.same) for p in pairs]
    mixed = real[n_degraded:] + [pair(got[p.left], w, p.same) for p, w in zip(chosen, worse, strict=True)]
    out: dict[str, Any] = {"threshold": threshold, "min_quality": MIN_QUALITY, "degraded_pairs": n_degraded}
    for label, rows in (("real", real), ("real_and_degraded", mixed)):
        ok = [r for r in rows if r is not None]
        out[label] = {
            "pairs": len(rows),
            "no_face": len(rows) - len(ok),
            "by_cut": {f"{c:g}": split(ok, threshold, c) for c in sorted({0.1, MIN_QUALITY, 0.4, 0.6, 0.8})},
        }
    return out


def liveness(url: str, data: Path, n: int) -> dict[str, Any]:
    photos = sorted((data / "photos").glob("img*.jpg"))
    lfw = sorted((data / "lfw-dev/images").glob("*/*_0001.jpg"))[:: max(1, 2000 // n)][:n]
    params = {"liveness": "true"}

    def refused(docs: list[list[dict]], pick: str) -> dict[str, Any]:
        """``pick``: every face, the largest (what verify and enrol use) or the one nearest the centre."""
        chosen = {
            "every": lambda fs: fs,
            "largest": lambda fs: [max(fs, key=lambda f: f["size"])] if fs else [],
            "centre": lambda fs: fs[:1],
        }[pick]
        faces = [f for fs in docs for f in chosen(fs)]
        scores = [f["liveness"]["score"] for f in faces]
        bad = sum(1 for f in faces if not f["liveness"]["real"])
        return {
            "faces": len(faces),
            "refused": bad,
            "share": round(bad / len(faces), 4) if faces else 0.0,
            "ci95": wilson(bad, len(faces)),
            "score_p50_p95_max": np.percentile(scores, [50, 95, 100]).round(4).tolist() if scores else [],
            "no_face": sum(1 for fs in docs if not fs),
        }

    raw = [load(p) for p in lfw]
    photo_faces = asyncio.run(faces_of(url, [p.read_bytes() for p in photos], "/v1/detect", params))
    out = {
        "photos_real_every_face": refused(photo_faces, "every"),
        "photos_real_largest_face": refused(photo_faces, "largest"),
        "lfw_real": refused(
            asyncio.run(faces_of(url, [p.read_bytes() for p in lfw], "/v1/detect", params)), "centre"
        ),
    }
    proxies: dict[str, Callable[[Image], Image]] = {
        "screen": degrade.screen,
        "print_like": degrade.print_like,
        "blur_3px": lambda im: degrade.blur(im, 3.0),
    }
    for name, fn in proxies.items():
        out[f"lfw_{name}"] = refused(
            asyncio.run(faces_of(url, [jpeg(fn(im)) for im in raw], "/v1/detect", params)), "centre"
        )
    return out


def measure(url: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = {
        "monotonic": monotonic(url, data / "lfw-dev", args.mono),
        "accuracy": accuracy(url, data / "lfw-dev", args.degraded),
        "liveness": liveness(url, data, args.live),
    }
    return out | {"seconds": round(time.perf_counter() - t0, 1)}


def pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def markdown(res: dict[str, Any]) -> list[str]:
    lines = [
        "# Face quality and the liveness gate, through the running server",
        "",
        f"Machine: {res['machine']}. Command: `{res['command']}` ({res['seconds']:.0f} s, the server on the "
        "same cores). The score and its signals: face/quality.py and docs/api.md (quality = the product of "
        "six ramps: sharpness, |yaw|, |pitch|, |roll|, face size, detector confidence).",
        "",
        "## 1. The score under degradation (lfw-dev, first image of each person, bench/degrade.py)",
        "",
        "Mean score per level (± std over images; `no face`: the detector found none, scored 0). "
        "`never rose`: images whose score did not go up from any level to the next. Roll and yaw turn each "
        "face further the way it already leans. Yaw is an approximation (an average head's depth map, "
        "turned and re-projected: the nose moves against the eyes as in a real turn, but nothing hidden "
        "is revealed): it is not a photo of a turned head.",
        "",
        "| degradation | level | mean score | std | no face |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, m in res["monotonic"].items():
        for i, level in enumerate(m["levels"]):
            lines.append(
                f"| {name} | {level:g} | {m['mean'][i]:.3f} | {m['std'][i]:.3f} | {m['no_face'][i]} |"
            )
    lines += [
        "",
        "| degradation | mean falls at every level | images whose score never rose |",
        "| --- | --- | --- |",
    ]
    for name, m in res["monotonic"].items():
        falls = all(b < a for a, b in zip(m["mean"], m["mean"][1:], strict=False))
        lines.append(f"| {name} | {'yes' if falls else 'NO'} | {m['never_rose']} of {m['images']} |")
    acc = res["accuracy"]
    lines += [
        "",
        f"## 2. Verification accuracy above and below a quality cut (server threshold {acc['threshold']})",
        "",
        f"A pair's quality is the lower of its two faces'. `real`: the {acc['real']['pairs']} lfw-dev "
        "pairs as they are; `real_and_degraded`: the same, with the second image of the first "
        f"{acc['degraded_pairs']} pairs degraded (random degradation and level, seed 24). The default "
        f"`enrol.min_quality` is **{acc['min_quality']}**. 95 % Wilson intervals.",
        "",
        "| pairs | cut | above: pairs | above: accuracy | below: pairs | below: accuracy |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label in ("real", "real_and_degraded"):
        for cut, s in acc[label]["by_cut"].items():
            a, b = s["above"], s["below"]
            mark = " (default)" if float(cut) == acc["min_quality"] else ""
            lines.append(
                f"| {label} | {cut}{mark} | {a['pairs']} | {pct(a['accuracy'])} {a['ci95']} | {b['pairs']} | "
                f"{pct(b['accuracy'])} {b['ci95']} |"
            )
    below = acc["real"]["by_cut"][f"{acc['min_quality']:g}"]["below"]
    lines += [
        "",
        f"On lfw-dev as it is the score does not predict errors: the {below['pairs']} pairs below the "
        f"default cut were decided right at {pct(below['accuracy'])}, and lfw-dev's errors all lie above it. "
        "The gap opens where faces are degraded in what the score measures: it predicts failures from "
        "blur, low resolution and pose, nothing else.",
    ]
    live = res["liveness"]
    lines += [
        "",
        "## 3. The liveness gate (`require_live`: refused when the anti-spoofing score > `spoof_above` 0.2)",
        "",
        "| input | faces | refused | share (95 % CI) | score p50 / p95 / max | images without a face |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in live.items():
        p50, p95, top = r["score_p50_p95_max"] or [0, 0, 0]
        lines.append(
            f"| {name} | {r['faces']} | {r['refused']} | {pct(r['share'])} {r['ci95']} | "
            f"{p50:.3f} / {p95:.3f} / {top:.3f} | {r['no_face']} |"
        )
    return lines + LIVENESS_NOTE


LIVENESS_NOTE = [
    "",
    "`spoof_above` 0.2 is the constant of the Android apps that ship this model file "
    '(`FaceAntiSpoofing.THRESHOLD = 0.2f`, "above this is an attack"); no data it was measured on is '
    "published, and those apps reject blurred faces with a Laplacian check before asking the model. "
    "Measured here it refuses many real faces: the photos set's faces are sharp close-ups, lfw-dev's are "
    "~100 px faces in 250x250 news photos, upscaled to the model's 256x256 input. The spoof-like inputs "
    "are image processing of real photos (bench/degrade.py: `print_like` grey halftone on a paper tone, "
    "`screen` half resolution + moire + blue cast + JPEG 30, and blur), not photos of prints or screens "
    "(none is available here): they show how the model reacts to those artefacts, not whether it catches "
    "a presentation attack; that `screen` is refused less often than lfw-dev's real faces says the model "
    "does not separate them. A threshold for `require_live` needs real attacks captured by a camera; until "
    "then it is a strict filter that suits sharp close-up captures.",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="a running server; default: start one with the default config")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--mono", type=int, default=60, help="lfw-dev images degraded level by level")
    ap.add_argument("--degraded", type=int, default=1200, help="lfw-dev pairs whose second image is degraded")
    ap.add_argument("--live", type=int, default=300, help="lfw-dev images for the liveness measures")
    ap.add_argument("--render", action="store_true", help="only rewrite quality.md from quality.json")
    args = ap.parse_args()
    out = ROOT / "bench/results"
    if args.render:
        (out / "quality.md").write_text(
            "\n".join(markdown(json.loads((out / "quality.json").read_text()))) + "\n"
        )
        return
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            running = start_server(args.models, Path(stack.enter_context(tempfile.TemporaryDirectory())), {})
            stack.callback(stop_server, running)
            url = running.url
        res = measure(url, args.data, args)
    res["machine"] = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores"
    res["command"] = "python bench/quality.py " + " ".join(sys.argv[1:])
    (out / "quality.json").write_text(json.dumps(res, indent=2))
    lines = markdown(res)
    (out / "quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
