"""Which faces verify, identify and enrol accept: ``min_quality`` (face/quality.py's score) and
``require_live`` (the anti-spoofing score at most the model's ``spoof_above``), each a config default
that a request may override. A refused face gets a reason naming the failing signal or score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from facepipe.errors import InvalidInput
from facepipe.face.faces import Face


@dataclass(slots=True, frozen=True)
class Gate:
    min_quality: float = 0.0  # 0: every face passes
    require_live: bool = False


def _flag(raw: dict[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InvalidInput(f"{key}: expected true or false, got {value!r}")


def gate_params(
    raw: dict[str, Any], min_quality: float, require_live: bool, spoof_above: float | None
) -> Gate:
    """The request's gate: its ``min_quality`` and ``require_live``, else the config's defaults.
    ``require_live`` without an anti-spoofing model is refused, never silently passed."""
    value = raw.get("min_quality", min_quality)
    try:
        q = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"min_quality: expected a number, got {value!r}") from None
    if not 0.0 <= q <= 1.0:
        raise InvalidInput(f"min_quality: {q} is outside [0, 1]")
    live = _flag(raw, "require_live", require_live)
    if live and spoof_above is None:
        raise InvalidInput(
            "require_live was asked but the anti-spoofing model 'antispoof' is not installed "
            "(face.pack: clean has none); no liveness check can be made"
        )
    return Gate(q, live)


def refusal(face: Face, gate: Gate, spoof_above: float | None) -> str:
    """Why ``gate`` refuses ``face`` ('' if it passes)."""
    if gate.min_quality > 0 and face.quality is not None and face.quality.score < gate.min_quality:
        return face.quality.reason(gate.min_quality)
    if gate.require_live:
        if face.liveness is None or spoof_above is None:
            return "require_live: no liveness score was computed for this face"
        if face.liveness > spoof_above:
            return (
                f"require_live: anti-spoofing score {face.liveness:.3f} is above the model's "
                f"spoof_above {spoof_above:g} (the face looks like a spoof)"
            )
    return ""
