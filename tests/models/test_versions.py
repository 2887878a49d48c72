"""Versions: atomic publish, newest by default, weighted split, sticky keys."""

from __future__ import annotations

from collections import Counter

import pytest

from facepipe.errors import InvalidInput, NotFound
from facepipe.models.versions import Versions


def test_newest_answers_without_weights() -> None:
    v: Versions[str] = Versions("m", {"1": "a", "10": "c", "2": "b"})
    assert v.names() == ["1", "2", "10"] and v.latest() == "10"
    assert v.pick() == ("10", "c") and v.get("2") == "b"
    assert v.remove("10") == "c" and v.pick() == ("2", "b")
    with pytest.raises(NotFound, match="no version '9'"):
        v.get("9")
    with pytest.raises(NotFound, match="no version loaded"):
        Versions("empty").pick()


def test_weighted_split_lands_near_its_weights() -> None:
    v: Versions[str] = Versions("m", {"1": "a", "2": "b"})
    v.set_weights({"1": 90, "2": 10})
    counts = Counter(v.pick()[0] for _ in range(2000))
    assert abs(counts["2"] / 2000 - 0.10) < 0.03


def test_sticky_keys_keep_their_variant_and_spread_across_users() -> None:
    v: Versions[str] = Versions("m", {"1": "a", "2": "b"})
    v.set_weights({"1": 50, "2": 50})
    assert len({v.pick("user-7")[0] for _ in range(50)}) == 1
    share = Counter(v.pick(f"user-{i}")[0] for i in range(2000))["2"] / 2000
    assert abs(share - 0.5) < 0.05


def test_weights_of_versions_not_loaded_fall_back_to_the_newest() -> None:
    v: Versions[str] = Versions("m", {"1": "a"})
    v.set_weights({"2": 100})
    assert v.pick() == ("1", "a")


@pytest.mark.parametrize("weights", [{"1": -1}, {"1": 0, "2": 0}, {"1": "x"}])
def test_bad_weights_are_refused(weights: dict) -> None:
    with pytest.raises(InvalidInput, match="weight"):
        Versions("m", {"1": "a"}).set_weights(weights)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e308, True, "5", -1])
def test_weights_are_finite_bounded_numbers(bad: object) -> None:
    """Issue 22 item 8: NaN/Infinity were accepted, and 1e308 twice summed to inf (one version got all)."""
    v: Versions[str] = Versions("m", {"1": "a", "2": "b"})
    with pytest.raises(InvalidInput, match=r"weights\.2: expected a number from 0 to 1e"):
        v.set_weights({"1": 1e6, "2": bad})  # type: ignore[dict-item]
    assert v.weights == {}
    v.set_weights({"1": 1e6, "2": 1e6})
    counts = Counter(v.pick()[0] for _ in range(400))
    assert counts["1"] > 100 and counts["2"] > 100
