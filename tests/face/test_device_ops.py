"""The photo path with decode, detect, align and embed on a torch device against the CPU path (same
faces, same embeddings), and the config rule that keeps device images inside one process. Runs on CPU
torch in CI and on the GPU too where CUDA is present (bench/gpu_photos.py records that run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'facepipe[gpu]')")
from facepipe.config import parse_config  # noqa: E402
from facepipe.engine import Chain  # noqa: E402
from facepipe.errors import ConfigError  # noqa: E402
from facepipe.face.decode import DecodeLimits  # noqa: E402
from facepipe.face.detect_blazeface import BlazeFaceOp  # noqa: E402
from facepipe.face.device_ops import DeviceAlignOp, DevicePhotoDecodeOp  # noqa: E402
from facepipe.face.embed import EmbedOp  # noqa: E402
from facepipe.face.faces import DetectParams  # noqa: E402
from facepipe.face.pipelines import FaceEmbedOp, align_op, gpu_of, photo_decode_op, photos  # noqa: E402
from facepipe.models.repository import Repository  # noqa: E402
from facepipe.runtime import RuntimeSpec  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _paths(repo: Repository, where: str) -> tuple[Chain, Chain, FaceEmbedOp]:
    """The device path and the CPU path (OpenCV decode and warp) on the same runtime for the nets,
    so that only the ops this change moved to the device differ."""
    spec = RuntimeSpec(device=where, engine="torch", precision="fp32")
    blaze = repo.bundle("blazeface")
    gpu = Chain(DevicePhotoDecodeOp(DecodeLimits(), where), BlazeFaceOp(blaze, spec), DeviceAlignOp(where))
    cpu = Chain(photo_decode_op(DecodeLimits()), BlazeFaceOp(blaze, spec), align_op())
    embed = FaceEmbedOp(EmbedOp(repo.bundle("mobilefacenet"), spec))
    for op in (gpu, cpu, embed):
        op.setup()
    return gpu, cpu, embed


@pytest.mark.parametrize("where", DEVICES)
def test_device_path_gives_the_cpu_paths_faces_and_embeddings(
    where: str, models_dir: Path, lfw_dir: Path
) -> None:
    repo = Repository(models_dir)
    if not repo.versions("blazeface"):
        pytest.skip("the blazeface pack is not installed: run `facepipe models pull blazeface`")
    blobs = [f.read_bytes() for f in sorted((lfw_dir / "images").glob("*/*.jpg"))[:16]]
    params = DetectParams(min_face_size=40, thresholds=(0.6, 0.7, 0.5))
    jobs = [(b, params, f"p{i}") for i, b in enumerate(blobs)]
    front, cpu, embed = _paths(repo, where)
    want = cpu(jobs)
    got = front([*jobs, (b"junk", DetectParams(), "bad")])
    assert type(got[-1]).__name__ == "UnsupportedMediaType"  # a bad image fails alone
    got = got[:-1]
    assert isinstance(got[0].image, torch.Tensor) and got[0].image.device.type == where
    assert [len(p.faces) for p in got] == [len(p.faces) for p in want]
    assert sum(len(p.faces) for p in want) >= 14
    # nvJPEG's pixels differ from OpenCV's by a grey level here and there: landmarks move a little
    nvjpeg = isinstance(front.ops[0], DevicePhotoDecodeOp) and front.ops[0].nvjpeg
    moved = max(
        float(np.abs(fg.landmarks - fw.landmarks).max())
        for g, w in zip(got, want, strict=True)
        for fg, fw in zip(g.faces, w.faces, strict=True)
    )
    assert all(f.device_crop is not None and f.device_crop.device.type == where for p in got for f in p.faces)
    e_got = [e for per in embed(got) for e in per]
    e_want = [e for per in embed(want) for e in per]
    cos = np.array([float(a @ b) for a, b in zip(e_got, e_want, strict=True)])
    print(
        f"device path {where} (nvJPEG {nvjpeg}): {len(cos)} faces, landmarks moved <= {moved:.3f} px, "
        f"min cosine to the CPU ops' path {cos.min():.6f}"
    )
    assert moved <= (2.0 if nvjpeg else 0.5) and cos.min() > (0.995 if nvjpeg else 0.999)


def test_embed_op_takes_device_crops_on_any_session(models_dir: Path) -> None:
    """Crops as tensors reach a torch session as they are and an onnxruntime one through the host."""
    bundle = Repository(models_dir).bundle("mobilefacenet")
    rng = np.random.default_rng(2)
    crops = [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(3)]
    ops = [EmbedOp(bundle, RuntimeSpec(engine="onnxruntime")), EmbedOp(bundle, RuntimeSpec(engine="torch"))]
    for op in ops:
        op.setup()
        got = np.stack(op([torch.from_numpy(c) for c in crops]))
        assert np.abs(got - np.stack(op(crops))).max() < 1e-5


def test_gpu_ops_follow_the_op_device_keys_and_stay_in_thread_ops(models_dir: Path) -> None:
    gpu = {"device_type": 1, "devices": "1"}
    config = parse_config({"op": {"decode": {"local_service_conf": gpu}}})
    assert gpu_of(config, "decode") == "cuda:1" and gpu_of(config, "align") == ""
    procs = parse_config({"dag": {"is_thread_op": False}, "op": {"align": {"local_service_conf": gpu}}})
    with pytest.raises(ConfigError, match=r"op\.decode\.is_thread_op"):
        photos(procs, Repository(models_dir), "mtcnn")


def test_each_worker_takes_its_gpu_of_the_listed_ones() -> None:
    """``devices: "0,2"`` on op.decode / op.align: worker i on the i-th GPU in turn, like model ops."""
    from facepipe.engine.worker import as_worker
    from facepipe.face.device_ops import worker_device

    assert worker_device("cpu") == torch.device("cpu")
    assert worker_device("cuda:1") == torch.device("cuda:1")
    with as_worker(1):
        assert worker_device("cuda:0,2") == torch.device("cuda:2")
    with as_worker(2):
        assert worker_device("cuda:0,2") == torch.device("cuda:0")


def test_flip_average_mirrors_crops_on_the_device_like_arrays() -> None:
    """face.flip_average with align on the GPU: the crops are tensors; the mirror is the same."""
    import numpy as np

    from facepipe.face.embed import flip_averaged

    def embed(crops: list) -> list:  # a stand-in embedder: the mean of each column, per crop
        return [np.asarray(c, np.float32).mean(axis=(0, 2)) for c in crops]

    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (4, 5, 3), dtype=np.uint8) for _ in range(3)]
    on_host = flip_averaged(embed, crops)
    on_device = flip_averaged(embed, [torch.from_numpy(c) for c in crops])
    assert all(np.allclose(a, b) for a, b in zip(on_host, on_device, strict=True))
