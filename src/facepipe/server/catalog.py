"""What the server serves, version by version: every repository bundle as a KServe v2 model, and the
seed's ``ArcFace`` service (with its KServe twin) over the versions of its embedding bundle; all of
them loaded, self-tested, swapped and split by ``serving.control``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facepipe.api.limits import PixelBudget
from facepipe.config import Config, OpConfig, load_config
from facepipe.edges.state import ServerState
from facepipe.engine.pipeline import Pipeline
from facepipe.engine.stage import stage_config
from facepipe.errors import InvalidInput, ModelError
from facepipe.face import pipelines
from facepipe.face.decode import b64decode, sniff
from facepipe.models.bundle import Bundle, TensorSpec
from facepipe.models.control import Managed, ModelControl, Policy, golden
from facepipe.models.repository import Repository
from facepipe.models.servable import InferModel, SeedService, check_inputs
from facepipe.models.versions import Versions
from facepipe.runtime import precision_of, runtime_spec
from facepipe.runtime.precision import BF16_MIN_COSINE, min_cosine
from facepipe.runtime.tensor_model import TensorModel, gather_items
from facepipe.server.user_app import AppPart

log = logging.getLogger(__name__)
IMAGE_KEYS = ("image", "img", "x")


def image_bytes(value: str | bytes, label: str = "image") -> bytes:
    """A seed/KServe image value: raw image bytes, or base64 text of them."""
    try:
        raw = value.encode("latin-1") if isinstance(value, str) else value
    except UnicodeEncodeError:  # neither bytes carried as Latin-1 text nor base64
        raise InvalidInput(f"{label}: neither image bytes nor valid base64") from None
    if sniff(raw):
        return raw
    decoded = b64decode(raw)
    if decoded is None:
        raise InvalidInput(f"{label}: neither image bytes nor valid base64")
    return decoded


def seed_feed(feed: dict[str, str]) -> bytes:
    for key in IMAGE_KEYS:
        if key in feed:
            return image_bytes(feed[key], f"value of key {key!r}")
    raise InvalidInput(f"missing key: expected one of {list(IMAGE_KEYS)}, got {sorted(feed)}")


def seed_fetch(embedding: np.ndarray) -> dict[str, np.ndarray]:
    return {"out": embedding[None, :]}


def embedding_dim(bundle: Bundle) -> int:
    m = bundle.manifest
    return int(m.embedding_dim or m.outputs[0].shape[-1])


@dataclass(slots=True)
class ImageModel:
    """An image pipeline as a KServe v2 model: ``image`` BYTES [N] in, ``embedding`` FP32 [N, D] out."""

    pipeline: Pipeline
    dim: int
    name: str = "ArcFace"
    version: str = "1"
    platform: str = "facepipe_pipeline"
    parameters: dict[str, str] = field(default_factory=dict)  # shown in its metadata (precision)
    inputs: list[TensorSpec] = field(default_factory=lambda: [TensorSpec("image", [-1], "BYTES")])
    outputs: list[TensorSpec] = field(default_factory=list)
    budget: PixelBudget = field(default_factory=PixelBudget)  # shared with /v1 and the seed routes

    def __post_init__(self) -> None:
        self.outputs = [TensorSpec("embedding", [-1, self.dim], "float32")]

    def ready(self) -> bool:
        return self.pipeline.running

    async def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self, inputs)
        items = [image_bytes(v, f"image[{i}]") for i, v in enumerate(inputs["image"].ravel())]
        if not items:
            raise InvalidInput("image: empty batch")
        cap = self.pipeline.stages[0].config.queue_size  # more could never all be queued: say so
        if len(items) > cap:
            raise InvalidInput(
                f"image: {len(items)} images in one request; the limit is {cap} (dag.channel_size)"
            )
        with self.budget.admit(items):
            return {"embedding": np.stack(await gather_items(self.pipeline, items))}


def _close(got: np.ndarray, want: np.ndarray, label: str, precision: str) -> None:
    if got.shape != want.shape:
        raise ModelError(f"self-test: {label} has shape {got.shape}, golden {want.shape}")
    if precision == "bf16":  # 8 mantissa bits: the direction of each output is what must hold
        cos = min_cosine([got], [want])
        if not cos >= BF16_MIN_COSINE:
            raise ModelError(f"self-test: {label} at bf16 has cosine {cos:.6f} (allowed {BF16_MIN_COSINE})")
        return
    err = float(np.max(np.abs(got - want))) / max(1.0, float(np.max(np.abs(want))))
    if not np.isfinite(err) or err > 1e-3:
        raise ModelError(f"self-test: {label} differs from the golden output by {err:.3g} (allowed 1e-3)")


async def tensor_selftest(model: TensorModel, bundle: Bundle) -> None:
    """The bundle's golden inputs through the loaded model must give its golden outputs."""
    for i, (inputs, outs) in enumerate(golden(bundle)):
        got = await model.infer(inputs)
        for spec, want in zip(bundle.manifest.outputs, outs, strict=True):
            label = f"golden case {i}, output {spec.name}"
            _close(got[spec.name], want, label, model.parameters.get("precision", "fp32"))


async def arcface_selftest(model: ImageModel, bundle: Bundle) -> None:
    """The golden crops, as PNG images, through the whole service (decode, resize, embed)."""
    pre = bundle.manifest.preprocess
    for i, (inputs, outs) in enumerate(golden(bundle)):
        x = next(iter(inputs.values()))[0]
        if bundle.manifest.inputs[0].layout == "NCHW":  # golden inputs are model inputs: back to HWC
            x = x.transpose(1, 2, 0)
        pixels = np.clip(np.round(x * np.asarray(pre.std) + np.asarray(pre.mean)), 0, 255).astype(np.uint8)
        rgb = pixels if pre.color.upper() == "RGB" else pixels[..., ::-1]
        png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
        got = (await model.infer({"image": np.array([png], dtype=object)}))["embedding"][0]
        want = outs[0][0] / max(1e-12, float(np.linalg.norm(outs[0][0])))
        if not float(got @ want) >= 0.999:
            raise ModelError(
                f"self-test: golden case {i} embeds at cosine {float(got @ want):.5f} to the golden"
            )


def _tensor_builder(config: Config) -> Callable[[Bundle], TensorModel]:
    def build(bundle: Bundle) -> TensorModel:
        name = bundle.manifest.name
        op = config.op.get(name) or OpConfig(
            batch_size=min(32, bundle.manifest.max_batch), auto_batching_timeout=1
        )
        stage = stage_config(config, name, op)
        model = TensorModel.build(bundle, stage, config.request_timeout_ms / 1000.0, runtime_spec(op))
        model.pipeline.variant = str(bundle.manifest.version)
        return model

    return build


def _arcface_builder(
    config: Config, budget: PixelBudget, label: str = "ArcFace"
) -> Callable[[Bundle], ImageModel]:
    """``label``: the pipeline's name in the tracer and metrics."""

    def build(bundle: Bundle) -> ImageModel:
        pipeline = pipelines.arcface(config, bundle)
        pipeline.name = label
        pipeline.variant = str(bundle.manifest.version)
        choice = precision_of(bundle, runtime_spec(config.op_config("ArcFace")))  # decided once, cached
        version = str(bundle.manifest.version)
        return ImageModel(
            pipeline, embedding_dim(bundle), version=version, budget=budget, parameters=choice.parameters()
        )

    return build


def policies(config: Config) -> dict[str, Policy]:
    out = {}
    for name, m in config.models.items():
        p = m.version_policy
        out[name] = Policy(latest=p.latest or 1, specific=tuple(p.specific or ()), all=p.all)
    return out


def apply_weights(config: Config, state: ServerState) -> None:
    """``models.<name>.weights`` from config onto the loaded versions of that model (or served name:
    ``ArcFace`` and ``mobilefacenet`` name the same versions); versions not loaded are skipped."""
    if state.control is None:
        return
    for name, m in config.models.items():
        if not m.weights:
            continue
        model = state.control.resolve(name)
        loaded = {v for mm in state.control.managed if mm.model == model for v in mm.versions.names()}
        state.control.set_weights(name, {v: w for v, w in m.weights.items() if v in loaded})


def build_state(config: Config, repo: Repository, app: AppPart | None = None) -> ServerState:
    """Empty version sets for every model and the ArcFace service (and the services of a user's
    ``app``, which replace built-ins of the same name), and the control that fills them."""
    embedder = pipelines.embedder_name(config)
    arcface: Versions[ImageModel] = Versions("ArcFace")
    models: dict[str, Versions[InferModel]] = {"ArcFace": arcface}  # type: ignore[dict-item]
    # an app's own ArcFace takes the name; the built-in one stays loaded for /v1/embed?aligned=true
    label = "ArcFace-builtin" if app is not None and "ArcFace" in app.seed else "ArcFace"
    budget = PixelBudget(config.face.max_request_pixels, config.face.max_inflight_pixels)  # one per server
    managed = [
        Managed("ArcFace", embedder, arcface, _arcface_builder(config, budget, label), arcface_selftest)
    ]
    for name in sorted({e.name for e in repo.index()}):
        versions: Versions[InferModel] = Versions(name)
        models[name] = versions
        managed.append(Managed(name, name, versions, _tensor_builder(config), tensor_selftest))
    seed = {"ArcFace": SeedService("ArcFace", arcface, seed_feed, seed_fetch)}
    if app is not None:
        seed |= app.seed
        models |= app.models
        managed += app.managed
    state = ServerState(seed, models, repo, config.max_body_bytes, config.json_numbers)
    state.crops = arcface
    state.budget = budget
    mc = config.model_control
    state.sticky_header = mc.sticky_header
    state.control = ModelControl(
        repo, managed, policies(config), state.statuses, mc.poll_interval_s, mc.drain_timeout_s
    )
    return state


@dataclass(slots=True)
class ConfigWatch:
    """Re-reads the config file when it changes and applies its A/B weights (called on every poll)."""

    path: Path | None
    state: ServerState
    mtime: float = 0.0

    def __call__(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        mtime = self.path.stat().st_mtime
        if mtime != self.mtime:
            if self.mtime:
                apply_weights(load_config(self.path), self.state)
                log.info("config %s changed: A/B weights re-applied", self.path)
            self.mtime = mtime
