"""The one place where the face data path is written, stage by stage, in order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from facepipe.config import Config
from facepipe.engine import Chain, Dag, FunctionOp, Node, Pipeline, per_item
from facepipe.engine.op import Op, OpFactory
from facepipe.errors import ConfigError, ModelError
from facepipe.face.align import align
from facepipe.face.decode import DecodeLimits, decode_image
from facepipe.face.detect_blazeface import BlazeFaceOp
from facepipe.face.detect_mtcnn import MtcnnOp
from facepipe.face.embed import EmbedOp, flip_averaged
from facepipe.face.faces import DetectParams, Photo
from facepipe.face.landmarks_dlib import DlibChipOp
from facepipe.face.liveness import LivenessOp
from facepipe.face.quality import QualityOp
from facepipe.models.bundle import Bundle
from facepipe.models.repository import Repository
from facepipe.runtime import RuntimeSpec, pinned, runtime_spec
from facepipe.runtime.bound import BundleModel, RepositoryModels

DETECTORS = {
    "mtcnn": ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet"),
    "blazeface": ("blazeface",),
    "blazeface_full": ("blazeface-full",),  # MediaPipe's full-range model: faces up to ~5 m away
}
BLAZEFACES = ("blazeface", "blazeface_full")
# The crops /v1 can cut: ArcFace-template alignment (face/align.py: align), and dlib's 5-point chip
# (face/landmarks_dlib.py) for an embedder that carries dlib's shape predictor (dlib-resnet).
ARCFACE, DLIB_CHIP = "arcface", "dlib-5point-chip"


def alignment(bundle: Bundle) -> str:
    return str(bundle.manifest.extra.get("alignment", ARCFACE))


def landmarks_file(bundle: Bundle) -> Path | None:
    spec = bundle.manifest.extra.get("landmarks")
    path = bundle.path / str(spec["file"]) if isinstance(spec, dict) and "file" in spec else None
    return path if path is not None and path.is_file() else None


def v1_alignment_problem(bundle: Bundle) -> str:
    """Why /v1 cannot feed this embedder ('' if it can)."""
    wanted = alignment(bundle)
    if wanted == ARCFACE or (wanted == DLIB_CHIP and landmarks_file(bundle) is not None):
        return ""
    return f"embedder {bundle.manifest.name!r} needs {wanted!r} face crops, which /v1 cannot cut for it"


def dlib_chip_op(landmarks: Path, detector: str) -> DlibChipOp:
    return DlibChipOp(landmarks, detector)


def decode_op(limits: DecodeLimits) -> FunctionOp:
    """Image bytes -> RGB arrays; a bad image fails only its own request."""
    return per_item(lambda data: decode_image(data, limits))


def photo_decode_op(limits: DecodeLimits) -> FunctionOp:
    """``(bytes, DetectParams, label)`` -> Photo; a bad image fails only its own request."""

    def decode(job: tuple[bytes, DetectParams, str]) -> Photo:
        data, params, label = job
        return Photo(decode_image(data, limits, label), params, label=label)

    return per_item(decode)


def gpu_of(config: Config, op: str) -> str:
    """``cuda:N[,M...]`` where ``op.<op>.local_service_conf`` puts a model-less op on the GPU
    (``device_type: 1``; every listed GPU, taken in turn by the op's workers), else ''."""
    spec = runtime_spec(config.op_config(op))
    if spec.device != "cuda":
        return ""
    return "cuda:" + ",".join(str(d) for d in (spec.devices or (spec.index,)))


def device_photo_decode_op(limits: DecodeLimits, device: str) -> Op:
    from facepipe.face.device_ops import DevicePhotoDecodeOp

    return DevicePhotoDecodeOp(limits, device)


def device_align_op(device: str) -> Op:
    from facepipe.face.device_ops import DeviceAlignOp

    return DeviceAlignOp(device)


def _align(batch: list[Photo]) -> list[Photo]:
    for photo in batch:
        for face in photo.faces:
            face.crop = align(photo.image, face.landmarks)
    return batch


def align_op() -> FunctionOp:
    return FunctionOp(_align)


class FaceEmbedOp:
    """Every face of every photo in the batch through the embedder in one call; per photo, the
    embeddings of its faces (the photos are only read: the join writes ``face.embedding``).
    ``flip`` (``face.flip_average``): each face's embedding is the unit-length mean of its crop's and
    its mirror image's, both in the same call (twice the embedder's work)."""

    def __init__(self, embed: EmbedOp, flip: bool = False) -> None:
        self.embed = embed
        self.flip = flip

    def setup(self) -> None:
        self.embed.setup()

    def __call__(self, batch: list[Photo]) -> list[list[np.ndarray]]:
        faces = [f for p in batch for f in p.faces]
        on_gpu = bool(faces) and all(f.device_crop is not None for f in faces)  # align ran on the GPU
        crops: list[Any] = [f.device_crop if on_gpu else f.crop for f in faces]
        if any(c is None for c in crops):
            raise RuntimeError("a face reached embed without a crop (the align op cuts one per face)")
        embs = iter(self._embed(crops)) if crops else iter([])
        return [[next(embs) for _ in p.faces] for p in batch]

    def _embed(self, crops: list[Any]) -> list[np.ndarray]:
        if self.flip:
            return flip_averaged(self.embed, crops)
        return [np.asarray(e) for e in self.embed(crops)]


def detector_op(name: str, *nets: BundleModel) -> MtcnnOp | BlazeFaceOp:
    """The detector on the bundles the ``detect`` node names, with ``op.detect``'s runtime."""
    bundles, runtime = [n.bundle for n in nets], nets[0].runtime
    return BlazeFaceOp(bundles[0], runtime) if name in BLAZEFACES else MtcnnOp(bundles, runtime)


def liveness_op(model: BundleModel) -> LivenessOp:
    return LivenessOp(model.bundle, model.runtime)


def face_embed_op(bundle: Bundle, runtime: RuntimeSpec, flip: bool = False) -> FaceEmbedOp:
    return FaceEmbedOp(EmbedOp(bundle, runtime), flip)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _join(names: tuple[str, ...], builtin: int, parts: tuple[Any, ...]) -> Photo:
    """The branches' per-face results written into the photo's faces: ``embed``, ``liveness`` (where
    it runs), ``quality``, then each user face op's values under ``face.extra[name]``."""
    photo: Photo = parts[0]
    results = parts[1:]
    for i, (name, values) in enumerate(zip(names, results, strict=True)):
        if values is None:
            continue
        if len(values) != len(photo.faces):
            raise RuntimeError(f"face op {name} gave {len(values)} values for {len(photo.faces)} faces")
        for face, value in zip(photo.faces, values, strict=True):
            if i < builtin and name == "embed":
                face.embedding = value
            elif i < builtin and name == "liveness":
                face.liveness = value
            elif i < builtin and name == "quality":
                face.quality = value
            else:
                face.extra[name] = _plain(value)
    return photo


def join_op(names: tuple[str, ...], builtin: int) -> FunctionOp:
    """Joins the branches ``names``, the first ``builtin`` of them facepipe's own."""
    return per_item(partial(_join, names, builtin))


def arcface_op(limits: DecodeLimits, bundle: Bundle, runtime: RuntimeSpec, gpu: str = "") -> Chain:
    """Decode (on the GPU ``gpu`` when ``op.decode`` is there: nvJPEG) then embed, in one worker."""
    if gpu:
        from facepipe.face.device_ops import DeviceDecodeOp

        return Chain(DeviceDecodeOp(limits, gpu), EmbedOp(bundle, runtime))
    return Chain(decode_op(limits), EmbedOp(bundle, runtime))


def embedder_name(config: Config) -> str:
    """The embedding model: the ``ArcFace`` op's ``model_config`` (default ``mobilefacenet``)."""
    return config.op_config("ArcFace").local_service_conf.model_config_ or "mobilefacenet"


def embedder(config: Config, repo: Repository) -> Bundle:
    return repo.bundle(embedder_name(config))


def arcface(config: Config, bundle: Bundle) -> Pipeline:
    """The seed's ``ArcFace`` service on one version of the embedding bundle: an aligned face crop
    -> decode -> resize to 112x112 -> embedding, all in the ``ArcFace`` op's worker like the seed's
    preprocess and process (a separate decode stage cost a thread hop: 0.7 ms at concurrency 1)."""
    runtime = pinned(bundle, runtime_spec(config.op_config("ArcFace")))
    limits = DecodeLimits(max_bytes=config.max_body_bytes, max_pixels=config.face.max_image_pixels)
    gpu = gpu_of(config, "decode") if runtime.device == "cuda" else ""
    return Dag("ArcFace").add("ArcFace", partial(arcface_op, limits, bundle, runtime, gpu)).compile(config)


def path_spec(config: Config, op: str, detector: str) -> RuntimeSpec:
    """An op's runtime on the photo path behind ``detector``. Behind BlazeFace, ``auto`` means fp32:
    there bf16 cost lfw-dev accuracy through the server past the 0.1 points allowed (all fp32 98.97 %;
    bf16 embedder 98.80 %, bf16 detector 98.77 %, both 98.83 %: bench/results/accuracy*.json), while
    behind MTCNN bf16 held (99.40 % against 99.30 %). The full-range BlazeFace path, not measured at
    bf16, is kept at fp32 likewise."""
    spec = runtime_spec(config.op_config(op))
    if detector in BLAZEFACES and spec.precision == "auto":
        spec = replace(spec, precision="fp32")
    return spec


def embed_spec(config: Config, bundle: Bundle, detector: str) -> RuntimeSpec:
    """The embed op's runtime (the ``ArcFace`` op's keys) behind ``detector``, ``auto`` resolved."""
    return pinned(bundle, path_spec(config, "ArcFace", detector))


def _align_factory(embedder: Bundle, detector: str, gpu: str) -> OpFactory:
    landmarks = landmarks_file(embedder)
    if alignment(embedder) == DLIB_CHIP and landmarks is not None:
        return partial(dlib_chip_op, landmarks, detector)
    return partial(device_align_op, gpu) if gpu else align_op


def gpu_path_problem(config: Config, nodes: Sequence[str]) -> str:
    """Why images or crops on the GPU cannot flow through these nodes ('' if they can): they stay in
    the worker's process, so every op they reach must be a thread op."""
    for name in nodes:
        op = config.op_config(name)
        if not (config.dag.is_thread_op if op.is_thread_op is None else op.is_thread_op):
            return (
                f"op.{name}.is_thread_op: must be true while op.decode or op.align runs on the GPU "
                "(device_type: 1): images and crops on the GPU do not leave the worker's process"
            )
    return ""


def photos(config: Config, repo: Repository, detector: str = "mtcnn", extra: Sequence[Node] = ()) -> Pipeline:
    """The face DAG: decode -> detect (faces with landmarks) -> align, then embed, liveness (when the
    model is installed; it runs for photos that ask), quality (face/quality.py) and each user face op
    in ``extra`` (default input: ``align``; one value per face) as concurrent branches, joined into
    the photo."""
    embed_bundle = embedder(config, repo)
    embed_runtime = embed_spec(config, embed_bundle, detector)  # embed runs the ArcFace op's model
    problem = v1_alignment_problem(embed_bundle)
    if problem:
        raise ModelError(problem)
    limits = DecodeLimits(max_bytes=config.max_body_bytes, max_pixels=config.face.max_image_pixels)
    # factories are partials of module-level functions: with dag.is_thread_op: false they are
    # pickled into each worker's process
    decode_gpu, align_gpu = gpu_of(config, "decode"), gpu_of(config, "align")
    decode = (
        partial(device_photo_decode_op, limits, decode_gpu)
        if decode_gpu
        else partial(photo_decode_op, limits)
    )
    dag = (
        Dag(f"photos-{detector}")
        .add("decode", decode)
        .add("detect", partial(detector_op, detector), model=DETECTORS[detector])
        .add("align", _align_factory(embed_bundle, detector, align_gpu))
        .add(
            "embed",
            partial(face_embed_op, embed_bundle, embed_runtime, config.face.flip_average),
            inputs="align",
        )
    )
    branches = ["embed"]
    if repo.versions("antispoof") and repo.permitted("antispoof"):
        dag.add("liveness", liveness_op, inputs="align", model="antispoof")
        branches.append("liveness")
    dag.add("quality", QualityOp, inputs="align")
    branches.append("quality")
    builtin = len(branches)
    for node in extra:
        dag.add(node.name, node.op, inputs=node.inputs or "align", model=node.models)
        branches.append(node.name)
    dag.add("join", partial(join_op, tuple(branches), builtin), inputs=["align", *branches])
    problem = (
        gpu_path_problem(config, ["decode", "detect", "align", *branches, "join"])
        if decode_gpu or align_gpu
        else ""
    )
    if problem:
        raise ConfigError(problem)
    specs = {"detect": path_spec(config, "detect", detector)}  # behind BlazeFace, auto is fp32
    return dag.compile(config, RepositoryModels(config, repo, specs=specs))
