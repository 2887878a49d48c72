"""config.yml: the seed's pipeline keys, kept, plus facepipe's own; validated with key paths.

Every key is documented in docs/config.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from facepipe.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TracerConfig(_Strict):
    interval_s: float = Field(10.0, ge=0, description="0 disables the tracer log")
    max_bytes: int = Field(10 * 1024 * 1024, ge=4096, description="rotate pipeline.tracer past this size")
    backups: int = Field(3, ge=0, le=100, description="rotated files kept: pipeline.tracer.1 ... .N")


class DagConfig(_Strict):
    is_thread_op: bool = True
    retry: int = Field(1, ge=0)
    use_profile: bool = False
    channel_size: int = Field(256, ge=1)
    tracer: TracerConfig = TracerConfig()


class LocalServiceConf(_Strict):
    model_config_: str = Field("", alias="model_config")
    devices: str = Field("", pattern=r"^\s*(\d+\s*(,\s*\d+\s*)*)?$", description="GPU indices, e.g. 0,1")
    device_type: int = Field(0, ge=0)
    thread_num: int = Field(1, ge=1)
    precision: str = Field("auto", pattern="^(auto|AUTO|fp32|FP32|fp16|FP16|bf16|BF16)$")
    engine: Literal["auto", "onnxruntime", "openvino", "torch"] = "auto"
    cuda_graphs: bool = True
    compile: bool = False  # GPU: torch.compile the module (compiled graphs cached on disk)
    compile_cache: str = ""  # where compiled graphs are kept; "": ~/.cache/facepipe/torch-compile
    ir_optim: bool = True
    mem_optim: bool = True


class OpConfig(_Strict):
    concurrency: int = Field(1, ge=1, le=64)
    timeout: float = Field(-1, description="ms; -1 means no per-op limit")
    retry: int | None = Field(None, ge=0)
    is_thread_op: bool | None = Field(None, description="this op only; unset: dag.is_thread_op")
    batch_size: int = Field(1, ge=1, le=4096)
    auto_batching_timeout: float = Field(0, ge=0, description="ms to wait for a fuller batch")
    local_service_conf: LocalServiceConf = LocalServiceConf()


DEFAULT_OPS: dict[str, dict[str, Any]] = {
    "decode": {"concurrency": 1, "batch_size": 8, "auto_batching_timeout": 0},
    "ArcFace": {
        "concurrency": 2,
        "batch_size": 4,
        "auto_batching_timeout": 2,
        "is_thread_op": False,
        "local_service_conf": {"model_config": "mobilefacenet", "thread_num": 2},
    },
    "detect": {"concurrency": 2, "batch_size": 4, "auto_batching_timeout": 0},
    "align": {"concurrency": 1, "batch_size": 8, "auto_batching_timeout": 0},
    "embed": {"concurrency": 2, "batch_size": 16, "auto_batching_timeout": 0},
    "liveness": {"concurrency": 1, "batch_size": 8, "auto_batching_timeout": 0},
    "quality": {"concurrency": 1, "batch_size": 8, "auto_batching_timeout": 0},
    "join": {"concurrency": 1, "batch_size": 8, "auto_batching_timeout": 0},
}


class FaceConfig(_Strict):
    """Defaults of the face API (``/v1``); requests may override the detection ones."""

    detector: Literal["mtcnn", "blazeface", "blazeface_full"] = "mtcnn"
    # "clean": load only bundles whose weights may be used commercially (models pull clean)
    pack: Literal["any", "clean"] = "any"
    min_face_size: float = Field(40.0, ge=12)
    thresholds: tuple[
        Annotated[float, Field(ge=0, le=1)],
        Annotated[float, Field(ge=0, le=1)],
        Annotated[float, Field(ge=0, le=1)],
    ] = (0.6, 0.7, 0.7)
    blazeface_threshold: float = Field(0.5, ge=0, le=1)
    max_faces: int = Field(0, ge=0)
    verify_threshold: float = Field(0.38, ge=-1, le=1)
    require_live: bool = Field(
        False, description="verify, identify and enrol refuse faces the anti-spoofing model calls spoof"
    )
    # /v1 embeddings as the mean of each face crop's and its mirror image's (twice the embedder's work)
    flip_average: bool = False
    opencv_threads: int = Field(1, ge=0, le=256)
    max_image_pixels: int = Field(40_000_000, ge=1, description="one image, read from its header")
    max_request_pixels: int = Field(64_000_000, ge=1, description="all images of one request")
    max_inflight_pixels: int = Field(256_000_000, ge=1, description="admitted images of the whole server")


class EnrolConfig(_Strict):
    """Which faces ``/v1/subjects/{id}/faces`` stores (a request's ``min_quality`` overrides)."""

    min_quality: float = Field(0.25, ge=0, le=1, description="face/quality.py's score; 0 accepts every face")


class GalleryConfig(_Strict):
    """The face gallery (``/v1/subjects``, ``/v1/identify``), stored under ``--data``."""

    enabled: bool = True
    file: str = "gallery.db"
    store: str | None = Field(
        None, description="sqlite:///<file> (relative to --data) or postgresql://...; unset: sqlite:///<file>"
    )
    index: Literal["exact", "ivf", "hnsw", "pgvector"] = "exact"
    ivf_nlist: int = Field(4096, ge=1)
    ivf_nprobe: int = Field(1024, ge=1)
    hnsw_m: int = Field(32, ge=4, le=256)
    hnsw_ef_search: int = Field(128, ge=1)
    merge_every: int = Field(4096, ge=1)
    pgvector_m: int = Field(16, ge=2, le=100)
    pgvector_ef_construction: int = Field(64, ge=4, le=1000)
    pgvector_ef_search: int = Field(200, ge=1, le=1000)
    keep_crops: bool = True
    pg_erase: Literal["vacuum", "vacuum_full"] = "vacuum"
    identify_threshold: float = Field(0.6, ge=-1, le=1)
    top_k: int = Field(1, ge=1, le=100)

    @field_validator("store")
    @classmethod
    def _store_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must be sqlite:///<file> or postgresql://[user@]host[:port]/dbname")
        if url is not None and url.startswith("sqlite:///") and not url.removeprefix("sqlite:///"):
            raise ValueError("sqlite:/// needs a file name (sqlite:///gallery.db)")
        return url

    @model_validator(mode="after")
    def _pgvector_store(self) -> GalleryConfig:
        if self.index == "pgvector" and not self.store_url().startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "gallery.index: pgvector needs gallery.store: postgresql://... (a server with pgvector)"
            )
        if self.pgvector_ef_construction < 2 * self.pgvector_m:
            raise ValueError("gallery.pgvector_ef_construction must be at least twice gallery.pgvector_m")
        return self

    def store_url(self) -> str:
        """The store this gallery uses: ``store``, or the SQLite file ``file`` under --data."""
        return self.store or f"sqlite:///{self.file}"


MIN_KEY_LENGTH = 16  # every API key, from config or the environment


class AuthConfig(_Strict):
    """API keys: ``api_keys`` may change the gallery and call admin routes, ``read_keys`` may only
    read and identify. Also taken from FACEPIPE_API_KEYS / FACEPIPE_READ_KEYS (comma-separated)."""

    api_keys: list[Annotated[str, Field(min_length=MIN_KEY_LENGTH)]] = Field(default_factory=list)
    read_keys: list[Annotated[str, Field(min_length=MIN_KEY_LENGTH)]] = Field(default_factory=list)
    protect_inference: bool = Field(
        False, description="detect/embed/verify, seed and KServe inference need a read or admin key"
    )


class VersionPolicyConfig(_Strict):
    """Triton-style: serve the newest ``latest`` versions, or the ``specific`` ones, or ``all``."""

    latest: int | None = Field(None, ge=1)
    specific: list[int] | None = None
    all: bool = False


class ModelConfig(_Strict):
    version_policy: VersionPolicyConfig = VersionPolicyConfig()
    weights: dict[str, Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )


class ModelControlConfig(_Strict):
    poll_interval_s: float = Field(0.0, ge=0, description="0: no polling; load with the API")
    drain_timeout_s: float = Field(30.0, gt=0)
    sticky_header: str = "x-variant-key"


class TracingConfig(_Strict):
    """OpenTelemetry spans per request (edge, each op, the gallery) exported over OTLP. Unset keys
    fall back to the standard OTEL_* environment variables, then to the defaults (docs/config.md)."""

    enabled: bool = False
    endpoint: str | None = Field(None, description="OTLP collector URL; unset: OTEL_EXPORTER_OTLP_*")
    protocol: Literal["grpc", "http/protobuf"] | None = None
    service_name: str | None = Field(None, min_length=1)
    sample_ratio: float | None = Field(None, ge=0, le=1, description="share of new traces recorded")

    @field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (http://127.0.0.1:4317)")
        return url


class RayAutoscalingConfig(_Strict):
    """Ray Serve's autoscaler: replicas follow the requests in flight per replica."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    target_ongoing_requests: float = Field(32, gt=0)
    upscale_delay_s: float = Field(3.0, ge=0)
    downscale_delay_s: float = Field(30.0, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> RayAutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class RayConfig(_Strict):
    """``facepipe serve --engine ray``: the server as a Ray Serve application (docs/config.md)."""

    app_name: str = Field("facepipe", pattern=r"^[A-Za-z0-9_.-]+$")
    replicas: int = Field(1, ge=1, le=1024)
    autoscaling: RayAutoscalingConfig | None = None
    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    max_ongoing_requests: int = Field(64, ge=1)
    max_queued_requests: int = Field(-1, ge=-1, description="-1: no limit at Ray's routers")
    retry_after_s: int = Field(1, ge=0, le=3600)
    metrics_interval_s: float = Field(5.0, ge=0, description="0: no export through Ray's metrics")
    admin_timeout_s: float = Field(60.0, gt=0)
    access_log: bool = False
    proxy_location: Literal["EveryNode", "HeadOnly"] = "EveryNode"


class Config(_Strict):
    http_port: int = Field(9998, ge=0, le=65535)
    rpc_port: int = Field(18091, ge=0, le=65535)
    worker_num: int = Field(1, ge=1, le=64)
    host: str = "127.0.0.1"
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    request_timeout_ms: float = Field(30000, gt=0)
    json_numbers: bool = False
    log_dir: str = "PipelineServingLogs"
    dag: DagConfig = DagConfig()
    op: dict[str, OpConfig] = Field(default_factory=dict)
    face: FaceConfig = FaceConfig()
    gallery: GalleryConfig = GalleryConfig()
    enrol: EnrolConfig = EnrolConfig()
    auth: AuthConfig = AuthConfig()
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    model_control: ModelControlConfig = ModelControlConfig()
    tracing: TracingConfig = TracingConfig()
    ray: RayConfig = RayConfig()

    @model_validator(mode="after")
    def _live_needs_a_liveness_model(self) -> Config:
        if self.face.require_live and self.face.pack == "clean":
            raise ValueError(
                "face.require_live: true cannot hold with face.pack: clean, which has no anti-spoofing "
                "model (its training data is not stated); set face.require_live: false or face.pack: any"
            )
        return self

    def op_config(self, name: str) -> OpConfig:
        if name in self.op:
            return self.op[name]
        return OpConfig.model_validate(DEFAULT_OPS.get(name, {}))


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "<root>"


def parse_config(raw: dict[str, Any] | None) -> Config:
    try:
        return Config.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(f"{_path(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid config: {problems}") from None


def load_config(path: Path | None) -> Config:
    if path is None:
        return parse_config({})
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys")
    return parse_config(raw)
