"""The one place where the face data path is written, stage by stage, in order."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np

from facepipe.config import Config
from facepipe.engine.op import Chain, FunctionOp, OpFactory, per_item
from facepipe.engine.pipeline import Pipeline
from facepipe.engine.stage import StageConfig, stage_config
from facepipe.face.align import align
from facepipe.face.decode import DecodeLimits, decode_image
from facepipe.face.detect_blazeface import BlazeFaceOp
from facepipe.face.detect_mtcnn import MtcnnOp
from facepipe.face.embed import EmbedOp
from facepipe.face.faces import DetectParams, Photo
from facepipe.face.liveness import LivenessOp
from facepipe.models.bundle import Bundle
from facepipe.models.repository import Repository
from facepipe.runtime import RuntimeSpec, pinned, runtime_spec

DETECTORS = {"mtcnn": ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet"), "blazeface": ("blazeface",)}


def decode_op(limits: DecodeLimits) -> FunctionOp:
    """Image bytes -> RGB arrays; a bad image fails only its own request."""
    return per_item(lambda data: decode_image(data, limits))


def photo_decode_op(limits: DecodeLimits) -> FunctionOp:
    """``(bytes, DetectParams, label)`` -> Photo; a bad image fails only its own request."""

    def decode(job: tuple[bytes, DetectParams, str]) -> Photo:
        data, params, label = job
        return Photo(decode_image(data, limits, label), params, label=label)

    return per_item(decode)


def _align(batch: list[Photo]) -> list[Photo]:
    for photo in batch:
        for face in photo.faces:
            face.crop = align(photo.image, face.landmarks)
    return batch


def align_op() -> FunctionOp:
    return FunctionOp(_align)


class FaceEmbedOp:
    """Every face of every photo in the batch through the embedder in one call, split back after."""

    def __init__(self, embed: EmbedOp) -> None:
        self.embed = embed

    def setup(self) -> None:
        self.embed.setup()

    def __call__(self, batch: list[Photo]) -> list[Photo]:
        faces = [f for p in batch for f in p.faces]
        if faces:
            for face, emb in zip(faces, self.embed([f.crop for f in faces]), strict=True):
                face.embedding = np.asarray(emb)
        return batch


def detector_op(name: str, nets: list[Bundle], runtime: RuntimeSpec) -> MtcnnOp | BlazeFaceOp:
    return BlazeFaceOp(nets[0], runtime) if name == "blazeface" else MtcnnOp(nets, runtime)


def face_embed_op(bundle: Bundle, runtime: RuntimeSpec) -> FaceEmbedOp:
    return FaceEmbedOp(EmbedOp(bundle, runtime))


def arcface_op(limits: DecodeLimits, bundle: Bundle, runtime: RuntimeSpec) -> Chain:
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
    limits = DecodeLimits(max_bytes=config.max_body_bytes)
    return Pipeline(
        "ArcFace",
        [(stage_config(config, "ArcFace"), partial(arcface_op, limits, bundle, runtime))],
        timeout_s=config.request_timeout_ms / 1000.0,
    )


def path_spec(config: Config, op: str, detector: str) -> RuntimeSpec:
    """An op's runtime on the photo path behind ``detector``. Behind BlazeFace, ``auto`` means fp32:
    there bf16 cost lfw-dev accuracy through the server past the 0.1 points allowed (all fp32 98.97 %;
    bf16 embedder 98.80 %, bf16 detector 98.77 %, both 98.83 %: bench/results/accuracy*.json), while
    behind MTCNN bf16 held (99.40 % against 99.30 %)."""
    spec = runtime_spec(config.op_config(op))
    if detector == "blazeface" and spec.precision == "auto":
        spec = replace(spec, precision="fp32")
    return spec


def embed_spec(config: Config, bundle: Bundle, detector: str) -> RuntimeSpec:
    """The embed op's runtime (the ``ArcFace`` op's keys) behind ``detector``, ``auto`` resolved."""
    return pinned(bundle, path_spec(config, "ArcFace", detector))


def photos(config: Config, repo: Repository, detector: str = "mtcnn") -> Pipeline:
    """Photos -> decode -> detect faces with landmarks -> align -> embed -> liveness (if asked)."""
    embed_bundle = embedder(config, repo)
    embed_runtime = embed_spec(config, embed_bundle, detector)
    nets = [repo.bundle(name) for name in DETECTORS[detector]]
    det_runtime = path_spec(config, "detect", detector)
    limits = DecodeLimits(max_bytes=config.max_body_bytes)
    # factories are partials of module-level functions: with dag.is_thread_op: false they are
    # pickled into each worker's process
    steps: list[tuple[StageConfig, OpFactory]] = [
        (stage_config(config, "decode"), partial(photo_decode_op, limits)),
        (stage_config(config, "detect"), partial(detector_op, detector, nets, det_runtime)),
        (stage_config(config, "align"), align_op),
        (stage_config(config, "embed"), partial(face_embed_op, embed_bundle, embed_runtime)),
    ]
    if repo.versions("antispoof"):
        spoof, liveness = repo.bundle("antispoof"), runtime_spec(config.op_config("liveness"))
        steps.append((stage_config(config, "liveness"), partial(LivenessOp, spoof, liveness)))
    return Pipeline(f"photos-{detector}", steps, timeout_s=config.request_timeout_ms / 1000.0)
