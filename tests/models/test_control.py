"""Model control with fake models: policies, self-test rejection, drain before stop, unload holds."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from facepipe.errors import ModelError, NotFound
from facepipe.models.bundle import Bundle
from facepipe.models.control import Managed, ModelControl, Policy
from facepipe.models.repository import Repository
from facepipe.models.versions import Versions


@dataclass
class FakePipeline:
    running: bool = False
    in_flight: int = 0
    log: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.log.append(f"stopped with {self.in_flight} in flight")
        self.running = False


@dataclass
class FakeModel:
    version: int
    pipeline: FakePipeline = field(default_factory=FakePipeline)


def make_repo(root: Path, versions: list[int]) -> Repository:
    for v in versions:
        d = root / "m" / str(v)
        d.mkdir(parents=True, exist_ok=True)
        manifest = {
            "name": "m",
            "version": v,
            "role": "embedding",
            "inputs": [{"name": "x", "shape": [-1, 2], "dtype": "float32"}],
            "outputs": [{"name": "y", "shape": [-1, 2], "dtype": "float32"}],
        }
        (d / "bundle.json").write_text(json.dumps(manifest))
        (d / "model.onnx").write_bytes(b"fake")
    return Repository(root)


def control(
    repo: Repository, versions: Versions, bad: frozenset[int] = frozenset(), policy: Policy | None = None
) -> ModelControl:
    async def selftest(model: FakeModel, bundle: Bundle) -> None:
        if model.version in bad:
            raise ModelError("golden output differs")

    managed = Managed("m", "m", versions, lambda b: FakeModel(b.manifest.version), selftest)
    return ModelControl(repo, [managed], {"m": policy or Policy()}, {}, drain_s=2)


def test_policy_choices() -> None:
    assert Policy().wanted([1, 3, 2]) == [3]
    assert Policy(latest=2).wanted([1, 3, 2]) == [2, 3]
    assert Policy(specific=(1, 9)).wanted([1, 2]) == [1]
    assert Policy(all=True).wanted([2, 1]) == [1, 2]


def test_new_version_swaps_in_and_the_old_one_drains_first(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, [1])
    versions: Versions[FakeModel] = Versions("m")
    ctl = control(repo, versions)

    async def run() -> None:
        assert await ctl.sync("m") == {"1": "loaded"}
        old = versions.get("1")
        old.pipeline.in_flight = 1  # a request still running on version 1
        make_repo(tmp_path, [2])

        async def finish() -> None:
            await asyncio.sleep(0.2)
            old.pipeline.in_flight = 0

        outcome, _ = await asyncio.gather(ctl.sync("m"), finish())
        assert outcome == {"2": "loaded", "1": "unloaded"}
        assert versions.names() == ["2"] and old.pipeline.log == ["stopped with 0 in flight"]

    asyncio.run(run())


def test_a_version_failing_its_self_test_is_rejected_and_the_old_keeps_serving(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, [1, 2])
    versions: Versions[FakeModel] = Versions("m")
    ctl = control(repo, versions, bad=frozenset({2}))

    async def run() -> None:
        versions.put("1", FakeModel(1))
        outcome = await ctl.sync("m")
        assert outcome["2"].startswith("rejected: golden output differs")
        assert versions.names() == ["1"]
        assert ctl.statuses[("m", "2")][0] == "UNAVAILABLE"

    asyncio.run(run())


def test_unload_holds_a_version_out_until_loaded_again(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, [1, 2])
    versions: Versions[FakeModel] = Versions("m")
    ctl = control(repo, versions, policy=Policy(all=True))

    async def run() -> None:
        await ctl.sync("m")
        assert versions.names() == ["1", "2"]
        assert await ctl.unload("m", 2) == ["2"]
        await ctl.sync("m")  # a poll does not bring it back
        assert versions.names() == ["1"]
        assert (await ctl.sync("m", pin=2, explicit=True)) == {"2": "loaded"}
        assert versions.names() == ["1", "2"]
        with pytest.raises(NotFound, match="no version 7"):
            await ctl.sync("m", pin=7)
        with pytest.raises(NotFound, match="not under model control"):
            await ctl.sync("other")

    asyncio.run(run())


def test_weights_need_loaded_versions(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, [1])
    versions: Versions[FakeModel] = Versions("m", {"1": FakeModel(1)})
    ctl = control(repo, versions)
    assert ctl.set_weights("m", {"1": 1}) == {"m": {"1": 1.0}}
    with pytest.raises(NotFound, match="not loaded"):
        ctl.set_weights("m", {"1": 1, "5": 1})
    assert np.isclose(sum(versions.weights.values()), 1.0)


def test_an_explicit_load_of_a_still_rejected_version_says_so(tmp_path: Path) -> None:
    """Issue 22 item 8: the load call answered 200 with no versions; it now names the rejection."""
    repo = make_repo(tmp_path, [1, 2])
    versions: Versions[FakeModel] = Versions("m")
    ctl = control(repo, versions, bad=frozenset({2}))

    async def run() -> None:
        versions.put("1", FakeModel(1))
        assert (await ctl.sync("m"))["2"].startswith("rejected: golden output differs")
        assert await ctl.sync("m") == {}  # a poll does not retry it (nor report it again)
        again = await ctl.sync("m", explicit=True)
        assert again["2"].startswith("rejected earlier and unchanged"), again
        assert versions.names() == ["1"]

    asyncio.run(run())


def test_a_load_that_loads_an_older_version_notes_the_skipped_one(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, [1, 2])
    versions: Versions[FakeModel] = Versions("m")
    ctl = control(repo, versions, bad=frozenset({2}))

    async def run() -> None:
        assert (await ctl.sync("m"))["2"].startswith("rejected: golden output differs")
        assert versions.names() == [] and await ctl.unload("m", 1) == []
        outcome = await ctl.sync("m", pin=None, explicit=True)  # the newest usable version: 1
        assert outcome["1"] == "loaded" and outcome["2"].startswith("skipped: rejected earlier"), outcome

    asyncio.run(run())
