"""The photo path's stages one by one on the GPU, in one process, no HTTP: the ceiling each stage of
bench/gpu_photos.py's server numbers is compared with (run by it in a spawned child, before the server
starts). Rates are items per second of one calling thread, over ~1 s after two warm-up calls, the GPU
synchronised before the clock is read; ``*_threads16`` runs 16 threads at once (cv2 releases the GIL).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.gpu_h100 import DATA, crops

SECONDS = float(os.environ.get("STAGE_SECONDS", "1.0"))  # SMOKE runs of the script use less


def rate(fn: Callable[[], Any], items: int, seconds: float = SECONDS) -> float:
    """Items per second of ``fn`` (which handles ``items`` per call), the GPU synchronised."""
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(2):
        fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += items
    sync()
    return n / (time.perf_counter() - t0)


def threaded(fn: Callable[[Any], Any], jobs: list[Any], threads: int, seconds: float = SECONDS) -> float:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fn, jobs[:threads]))
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            list(pool.map(fn, jobs))
            n += len(jobs)
        return n / (time.perf_counter() - t0)


@dataclass
class Ctx:
    repo: Any
    gpu: Any  # RuntimeSpec of the model ops
    where: str
    photos: list[bytes]
    crop_blobs: list[bytes]
    out: dict[str, float] = field(default_factory=dict)

    def put(self, key: str, value: float) -> None:
        self.out[key] = value
        print(f"{key}: {value:,.0f}", flush=True)


def decode_stages(c: Ctx) -> None:
    """OpenCV on CPU against nvJPEG (batched: upload, decode, images left on the GPU)."""
    from facepipe.face.decode import DecodeLimits, decode_image
    from facepipe.face.device_ops import DeviceDecodeOp

    photos, crop_blobs = c.photos, c.crop_blobs
    c.put("decode_photo_cpu_1thread", rate(lambda: [decode_image(b) for b in photos[:64]], 64))
    c.put("decode_photo_cpu_threads16", threaded(decode_image, photos, 16))
    c.put("decode_crop_cpu_1thread", rate(lambda: [decode_image(b) for b in crop_blobs[:64]], 64))
    c.put("decode_crop_cpu_threads16", threaded(decode_image, crop_blobs, 16))
    decs = [DeviceDecodeOp(DecodeLimits(), c.where) for _ in range(4)]
    for d in decs:
        d.setup()
    for b in (16, 64, 256):
        c.put(f"decode_photo_nvjpeg_b{b}", rate(lambda b=b: decs[0](photos[:b]), b))
        c.put(f"decode_crop_nvjpeg_b{b}", rate(lambda b=b: decs[0](crop_blobs[:b]), b))
    with ThreadPoolExecutor(4) as pool:  # four decode workers, each its own op (as the server runs them)
        c.put(
            "decode_photo_nvjpeg_b64_threads4",
            rate(lambda: list(pool.map(lambda d: d(photos[:64]), decs)), 256),
        )


def blazeface_stages(c: Ctx, host: list[Any], dev: list[Any]) -> None:
    """The input (pad + INTER_AREA), the net alone, the op (net, decoding, NMS)."""
    from facepipe.face.detect_blazeface import BlazeFaceOp, _square
    from facepipe.face.device import device_squares
    from facepipe.runtime import open_session

    c.put("blazeface_square_cpu_1thread", rate(lambda: [_square(h) for h in host[:64]], 64))
    c.put("blazeface_square_gpu_b64", rate(lambda: device_squares(dev[:64], 128, _square), 64))
    det = open_session(c.repo.bundle("blazeface"), c.gpu)
    squares = device_squares(dev, 128, _square)
    for b in (32, 128, 256):
        c.put(f"blazeface_net_fp16_b{b}", rate(lambda b=b: det.run_pixels(squares[:b]), b))
    blaze = BlazeFaceOp(c.repo.bundle("blazeface"), c.gpu)
    blaze.setup()
    th = [0.5] * 64
    c.put("blazeface_op_gpu_images_b64", rate(lambda: blaze.detect(dev[:64], th), 64))
    c.put("blazeface_op_cpu_images_b64", rate(lambda: blaze.detect(host[:64], th), 64))


def align_embed_stages(c: Ctx, host: list[Any]) -> None:
    """Alignment: OpenCV per face against one batched warp; the embedder alone (crops on the GPU,
    normalised there) and from host crops."""
    import torch

    from facepipe.face.align import align
    from facepipe.face.decode import DecodeLimits
    from facepipe.face.detect_blazeface import BlazeFaceOp
    from facepipe.face.device_ops import DeviceAlignOp, DevicePhotoDecodeOp
    from facepipe.face.faces import DetectParams
    from facepipe.runtime import open_session

    blaze = BlazeFaceOp(c.repo.bundle("blazeface"), c.gpu)
    blaze.setup()
    dphotos = DevicePhotoDecodeOp(DecodeLimits(), c.where)
    dphotos.setup()
    params = DetectParams(min_face_size=40, thresholds=(0.6, 0.7, 0.5), max_faces=1)
    found = blaze(dphotos([(b, params, "p") for b in c.photos[:256]]))
    faces = [(host[i], f.landmarks) for i, p in enumerate(found) for f in p.faces[:1]]
    c.put("align_cpu_1thread", rate(lambda: [align(img, pts) for img, pts in faces[:64]], 64))
    aligner = DeviceAlignOp(c.where)
    aligner.setup()
    c.put("align_gpu_b64", rate(lambda: aligner(found[:64]), sum(len(p.faces) for p in found[:64])))
    aligner(found)
    emb = open_session(c.repo.bundle("mobilefacenet"), c.gpu)
    pix = torch.stack([f.device_crop for p in found for f in p.faces] * 4)
    for b in (64, 256, 512):
        x = pix[:b]
        c.put(f"embed_net_fp16_b{b}", rate(lambda x=x: emb.run_pixels(x), b))
    hostpix = pix[:256].cpu().numpy()
    c.put("embed_net_fp16_b256_host_crops", rate(lambda: emb.run_pixels(hostpix), 256))


def mtcnn_stages(c: Ctx, host: list[Any]) -> None:
    """MTCNN's detect: P-Net per image and scale against grouped by size."""
    from facepipe.face.detect_mtcnn import MtcnnDetector
    from facepipe.face.faces import DetectParams

    nets = [c.repo.bundle(n) for n in ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet")]
    mtcnn = MtcnnDetector(*nets, c.gpu)
    mp = [DetectParams()] * 32
    for group in (False, True):
        mtcnn.group = group
        name = "grouped" if group else "per_image"
        c.put(f"mtcnn_detect_{name}_b32", rate(lambda: mtcnn.detect(host[:32], mp), 32))


def chain_stages(c: Ctx) -> None:
    """The BlazeFace photo chain in one thread, no HTTP: what one worker thread can feed."""
    from facepipe.engine import Chain
    from facepipe.face.decode import DecodeLimits
    from facepipe.face.detect_blazeface import BlazeFaceOp
    from facepipe.face.device_ops import DeviceAlignOp, DevicePhotoDecodeOp
    from facepipe.face.embed import EmbedOp
    from facepipe.face.faces import DetectParams
    from facepipe.face.pipelines import FaceEmbedOp, align_op, photo_decode_op

    embed_op = FaceEmbedOp(EmbedOp(c.repo.bundle("mobilefacenet"), c.gpu))
    embed_op.setup()
    params = DetectParams(min_face_size=40, thresholds=(0.6, 0.7, 0.5), max_faces=1)
    jobs = [(b, params, "p") for b in c.photos[:64]]
    limits = DecodeLimits()
    blaze = c.repo.bundle("blazeface")
    chains = {
        "gpu": Chain(DevicePhotoDecodeOp(limits, c.where), BlazeFaceOp(blaze, c.gpu), DeviceAlignOp(c.where)),
        "cpu": Chain(photo_decode_op(limits), BlazeFaceOp(blaze, c.gpu), align_op()),
    }
    for name, chain in chains.items():
        chain.setup()
        c.put(f"chain_blazeface_{name}_decode_align_b64", rate(lambda chain=chain: embed_op(chain(jobs)), 64))


def stages(models: Path) -> dict[str, float]:
    import torch

    from facepipe.face.decode import decode_image
    from facepipe.models.repository import Repository
    from facepipe.runtime import RuntimeSpec

    cuda = torch.cuda.is_available()
    where = "cuda" if cuda else "cpu"  # cpu: a smoke test of this script where there is no GPU
    gpu = RuntimeSpec(device=where, engine="torch", precision="fp16" if cuda else "fp32")
    photos = [p.read_bytes() for p in sorted((DATA / "photos").glob("*.jpg"))]
    c = Ctx(Repository(models), gpu, where, photos, crops()[1][:512])
    host = [decode_image(b) for b in photos[:256]]
    dev = [torch.from_numpy(h).to(where) for h in host]
    for step in (
        lambda: decode_stages(c),
        lambda: blazeface_stages(c, host, dev),
        lambda: align_embed_stages(c, host),
        lambda: mtcnn_stages(c, host),
        lambda: chain_stages(c),
    ):
        step()
    return c.out
