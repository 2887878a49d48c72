"""The gate of verify, identify and enrol: min_quality and require_live from the request or the config
defaults, refused with a reason that names the failing signal or score."""

from __future__ import annotations

import numpy as np
import pytest

from facepipe.api.gate import Gate, gate_params, refusal
from facepipe.errors import InvalidInput
from facepipe.face.align import ARCFACE_5
from facepipe.face.faces import Face
from facepipe.face.quality import Quality


def face(score: float = 0.9, liveness: float | None = None) -> Face:
    signals = {"sharpness": 0.02, "yaw": 0.0, "pitch": 0.0, "roll": 0.0, "size": 100.0, "confidence": 1.0}
    f = Face((0, 0, 100, 100), 0.99, ARCFACE_5.astype(np.float32), liveness=liveness)
    f.quality = Quality(score, signals)
    return f


def test_request_values_override_the_defaults() -> None:
    assert gate_params({}, 0.4, False, 0.2) == Gate(0.4, False)
    assert gate_params({"min_quality": "0", "require_live": "true"}, 0.4, False, 0.2) == Gate(0.0, True)
    assert gate_params({"require_live": False}, 0.0, True, 0.2) == Gate(0.0, False)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"min_quality": "high"}, "min_quality: expected a number"),
        ({"min_quality": 2}, r"min_quality: 2.0 is outside \[0, 1\]"),
        ({"require_live": "maybe"}, "require_live: expected true or false"),
    ],
)
def test_bad_values_are_named(raw: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        gate_params(raw, 0.4, False, 0.2)


def test_require_live_without_a_liveness_model_is_refused_not_passed() -> None:
    with pytest.raises(InvalidInput, match="require_live was asked but the anti-spoofing model"):
        gate_params({"require_live": "1"}, 0.0, False, None)
    with pytest.raises(InvalidInput, match="antispoof"):
        gate_params({}, 0.0, True, None)  # the config default asks: every request says why


def test_refusal_names_the_signal_or_the_score() -> None:
    assert refusal(face(0.9), Gate(0.4, False), 0.2) == ""
    low = refusal(face(0.1), Gate(0.4, False), 0.2)
    assert "face quality 0.100 is below min_quality 0.4" in low and "weakest signal: sharpness" in low
    spoof = refusal(face(0.9, liveness=0.7), Gate(0.0, True), 0.2)
    assert "anti-spoofing score 0.700 is above the model's spoof_above 0.2" in spoof
    assert refusal(face(0.9, liveness=0.1), Gate(0.0, True), 0.2) == ""
    assert "no liveness score" in refusal(face(0.9), Gate(0.0, True), 0.2)
