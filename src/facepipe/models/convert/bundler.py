"""Write a converted model as a bundle, atomically: a half-written bundle is never visible."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx

from facepipe.models.bundle import (
    GOLDEN_FILE,
    MANIFEST,
    MODEL_FILE,
    Manifest,
    TensorSpec,
    write_client_conf,
)
from facepipe.models.convert.onnx import io_specs
from facepipe.models.convert.verify import run_onnx


def fill_io(manifest: Manifest, model: onnx.ModelProto, layout: str = "") -> None:
    """Take the manifest's inputs and outputs from the model itself."""
    ins, outs = io_specs(model)
    manifest.inputs = [TensorSpec(str(i["name"]), list(i["shape"]), str(i["dtype"]), layout) for i in ins]  # type: ignore[call-overload]
    manifest.outputs = [TensorSpec(str(o["name"]), list(o["shape"]), str(o["dtype"])) for o in outs]  # type: ignore[call-overload]


def write_bundle(
    model: onnx.ModelProto,
    manifest: Manifest,
    golden: list[np.ndarray],
    root: Path,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Install ``model`` at ``root/<name>/<version>``; golden outputs are computed with the model itself.
    ``extra_files``: more files of the bundle (name -> bytes), installed in the same atomic step."""
    target = root / manifest.name / str(manifest.version)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{manifest.version}.", dir=target.parent))
    try:
        onnx.save(model, str(tmp / MODEL_FILE))
        outputs = run_onnx(tmp / MODEL_FILE, golden)
        arrays = {f"input_{i}": x for i, x in enumerate(golden)}
        for i, outs in enumerate(outputs):
            arrays |= {f"output_{i}_{k}": y for k, y in enumerate(outs)}
        np.savez_compressed(tmp / GOLDEN_FILE, **arrays)  # type: ignore[arg-type]
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
        (tmp / MANIFEST).write_text(manifest.to_json())
        write_client_conf(tmp, manifest)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
