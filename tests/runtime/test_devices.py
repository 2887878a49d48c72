"""``devices: "0,1,..."`` spreads an op's workers over the listed GPUs in turn; one GPU or CPU: unchanged."""

from __future__ import annotations

import pytest

from facepipe.config import ConfigError, parse_config
from facepipe.runtime import CPU, RuntimeSpec, runtime_spec


def spec_of(devices: str, device_type: int = 1) -> RuntimeSpec:
    cfg = parse_config(
        {"op": {"embed": {"local_service_conf": {"device_type": device_type, "devices": devices}}}}
    )
    return runtime_spec(cfg.op_config("embed"))


def test_workers_take_the_listed_gpus_in_turn() -> None:
    spec = spec_of("0, 2,3")
    assert spec.devices == (0, 2, 3) and spec.index == 0
    assert [spec.for_worker(i).index for i in range(7)] == [0, 2, 3, 0, 2, 3, 0]


@pytest.mark.parametrize("devices", ["", "1"])
def test_one_gpu_or_none_leaves_every_worker_on_it(devices: str) -> None:
    spec = spec_of(devices)
    assert {spec.for_worker(i).index for i in range(4)} == {int(devices or 0)}


def test_cpu_ignores_devices() -> None:
    spec = spec_of("0,1", device_type=0)
    assert spec.for_worker(1) == spec and CPU.for_worker(3) == CPU


def test_devices_that_are_not_gpu_indices_are_refused_with_the_key_path() -> None:
    with pytest.raises(ConfigError, match=r"op\.embed\.local_service_conf\.devices"):
        spec_of("0,gpu1")
