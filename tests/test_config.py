from __future__ import annotations

from pathlib import Path

import pytest

from facepipe.config import load_config, parse_config
from facepipe.engine.stage import stage_config
from facepipe.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_is_valid() -> None:
    cfg = load_config(ROOT / "config.yml")
    assert cfg.http_port == 9998 and cfg.rpc_port == 18091
    assert cfg.op["ArcFace"].local_service_conf.model_config_ == "mobilefacenet"


def test_seed_keys_map_to_the_engine() -> None:
    cfg = parse_config(
        {
            "dag": {"retry": 2, "channel_size": 9},
            "op": {
                "ArcFace": {"concurrency": 3, "batch_size": 4, "auto_batching_timeout": 5, "timeout": 250}
            },
        }
    )
    st = stage_config(cfg, "ArcFace")
    assert (st.concurrency, st.batch_size, st.max_wait_s, st.timeout_s, st.retry, st.queue_size) == (
        3,
        4,
        0.005,
        0.25,
        2,
        9,
    )


def test_is_thread_op_per_op_overrides_the_dag() -> None:
    cfg = parse_config({"dag": {"is_thread_op": True}, "op": {"ArcFace": {"is_thread_op": False}}})
    assert stage_config(cfg, "ArcFace").process and not stage_config(cfg, "embed").process
    cfg = parse_config({"dag": {"is_thread_op": False}, "op": {"embed": {"is_thread_op": True}}})
    assert stage_config(cfg, "ArcFace").process and not stage_config(cfg, "embed").process


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"op": {"ArcFace": {"concurrency": 0}}}, "op.ArcFace.concurrency"),
        ({"dag": {"tracer": {"interval_s": -1}}}, "dag.tracer.interval_s"),
        (
            {"op": {"ArcFace": {"local_service_conf": {"precision": "int3"}}}},
            "op.ArcFace.local_service_conf.precision",
        ),
        ({"face": {"opencv_threads": -1}}, "face.opencv_threads"),
        ({"face": {"pack": "commercial"}}, "face.pack"),
        ({"face": {"flip_average": "maybe"}}, "face.flip_average"),
        ({"face": {"detector": "blazeface-full"}}, "face.detector"),
        ({"op": {"embed": {"is_thread_op": "maybe"}}}, "op.embed.is_thread_op"),
        ({"htp_port": 1}, "htp_port"),
        ({"gallery": {"store": "mysql://db/x"}}, "gallery.store"),
        ({"gallery": {"store": "sqlite:///"}}, "gallery.store"),
        ({"gallery": {"pg_erase": "shred"}}, "gallery.pg_erase"),
        ({"gallery": {"index": "pgvector"}}, "gallery.index: pgvector needs gallery.store: postgresql"),
        ({"gallery": {"index": "annoy"}}, "gallery.index"),
        ({"gallery": {"pgvector_m": 1}}, "gallery.pgvector_m"),
        ({"gallery": {"pgvector_ef_search": 0}}, "gallery.pgvector_ef_search"),
        (
            {"gallery": {"store": "postgresql://db/x", "pgvector_m": 40, "pgvector_ef_construction": 64}},
            "gallery.pgvector_ef_construction must be at least twice gallery.pgvector_m",
        ),
        ({"http_port": "x"}, "http_port"),
        ({"face": {"max_request_pixels": 0}}, "face.max_request_pixels"),
        ({"face": {"max_inflight_pixels": -1}}, "face.max_inflight_pixels"),
        ({"face": {"max_image_pixels": "big"}}, "face.max_image_pixels"),
        ({"auth": {"protect_inference": "maybe"}}, "auth.protect_inference"),
        ({"models": {"m": {"weights": {"1": float("inf")}}}}, "models.m.weights.1"),
        ({"models": {"m": {"weights": {"1": 1e308}}}}, "models.m.weights.1"),
        ({"tracing": {"endpoint": "collector:4317"}}, "tracing.endpoint"),
        ({"tracing": {"sample_ratio": 1.5}}, "tracing.sample_ratio"),
        ({"tracing": {"protocol": "http/json"}}, "tracing.protocol"),
        ({"tracing": {"enabled": "sometimes"}}, "tracing.enabled"),
        ({"tracing": {"service_name": ""}}, "tracing.service_name"),
        ({"tracing": {"exporter": "zipkin"}}, "tracing.exporter"),
        ({"enrol": {"min_quality": 1.5}}, "enrol.min_quality"),
        ({"enrol": {"min_quality": "high"}}, "enrol.min_quality"),
        ({"face": {"require_live": "maybe"}}, "face.require_live"),
        ({"ray": {"replicas": 0}}, "ray.replicas"),
        ({"ray": {"autoscaling": {"min_replicas": 3, "max_replicas": 2}}}, "ray.autoscaling"),
        ({"ray": {"autoscaling": {"target_ongoing_requests": 0}}}, "ray.autoscaling.target_ongoing_requests"),
        ({"ray": {"max_queued_requests": -2}}, "ray.max_queued_requests"),
        ({"ray": {"app_name": "a b"}}, "ray.app_name"),
        ({"ray": {"num_gpus": "one"}}, "ray.num_gpus"),
    ],
)
def test_errors_name_the_key_path(raw: dict, path: str) -> None:
    with pytest.raises(ConfigError, match=path.replace(".", r"\.")):
        parse_config(raw)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_compile_applies_on_gpu_only() -> None:
    from facepipe.runtime import runtime_spec

    conf = {"local_service_conf": {"device_type": 1, "devices": "1", "compile": True, "compile_cache": "/c"}}
    gpu = runtime_spec(parse_config({"op": {"embed": conf}}).op_config("embed"))
    assert (gpu.device, gpu.index, gpu.compile, gpu.compile_cache) == ("cuda", 1, True, "/c")
    conf["local_service_conf"]["device_type"] = 0
    cpu = runtime_spec(parse_config({"op": {"embed": conf}}).op_config("embed"))
    assert cpu.device == "cpu" and not cpu.compile


def test_the_gallery_store_defaults_to_the_sqlite_file() -> None:
    assert parse_config({}).gallery.store_url() == "sqlite:///gallery.db"
    assert parse_config({"gallery": {"file": "g2.db"}}).gallery.store_url() == "sqlite:///g2.db"
    url = "postgresql://facepipe@db.internal:5432/gallery"
    assert parse_config({"gallery": {"store": url}}).gallery.store_url() == url


def test_quality_and_liveness_gate_defaults() -> None:
    cfg = parse_config({})
    assert cfg.enrol.min_quality == 0.25 and cfg.face.require_live is False
    assert parse_config({"enrol": {"min_quality": 0}, "face": {"require_live": True}}).face.require_live


def test_require_live_with_the_clean_pack_fails_at_load() -> None:
    """The clean pack has no anti-spoofing model: require_live could never hold, so loading says so."""
    with pytest.raises(ConfigError, match=r"face\.require_live.*face\.pack: clean"):
        parse_config({"face": {"require_live": True, "pack": "clean"}})
