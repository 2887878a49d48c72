"""The Ray Serve deployment's options as the ``ray:`` keys set them, checked by Ray's own validation."""

from __future__ import annotations

from typing import Any

import pytest
from ray import serve

from facepipe.config import parse_config
from facepipe.errors import ConfigError
from facepipe.server.ray_app import Replica, deployment_options


def options(ray: dict[str, Any]) -> dict[str, Any]:
    opts = deployment_options(parse_config({"ray": ray}))
    serve.deployment(Replica).options(**opts)  # Ray refuses options it does not accept
    return opts


def test_defaults_keep_batches_fillable_and_access_log_off() -> None:
    opts = options({})
    assert opts["num_replicas"] == 1 and "autoscaling_config" not in opts
    assert opts["max_ongoing_requests"] == 64  # Ray's own default of 5 would cap the batches
    assert opts["logging_config"] == {"enable_access_log": False}
    assert opts["backpressure_config"] == {"status_code": 503, "retry_after_s": 1}


def test_proxy_location_is_one_of_rays() -> None:
    from ray.serve.config import ProxyLocation

    for where in ("EveryNode", "HeadOnly"):
        assert ProxyLocation(parse_config({"ray": {"proxy_location": where}}).ray.proxy_location)
    with pytest.raises(ConfigError, match=r"ray\.proxy_location"):
        parse_config({"ray": {"proxy_location": "Disabled"}})


def test_keys_reach_the_options() -> None:
    auto = {"min_replicas": 2, "max_replicas": 4, "target_ongoing_requests": 8}
    opts = options({"autoscaling": auto, "access_log": True, "num_cpus": 2, "max_queued_requests": 10})
    assert "num_replicas" not in opts
    assert {k: opts["autoscaling_config"][k] for k in auto} == auto
    assert opts["logging_config"] == {"enable_access_log": True}
    assert opts["ray_actor_options"] == {"num_cpus": 2.0, "num_gpus": 0.0}
    assert opts["max_queued_requests"] == 10
