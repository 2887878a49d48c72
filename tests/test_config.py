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
        ({"op": {"embed": {"is_thread_op": "maybe"}}}, "op.embed.is_thread_op"),
        ({"htp_port": 1}, "htp_port"),
        ({"http_port": "x"}, "http_port"),
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
