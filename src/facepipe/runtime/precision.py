"""``precision: auto`` on CPU: bf16 where the CPU runs it natively and the bundle still gives its
golden answers, fp32 otherwise.

bf16 ran MobileFaceNet 1.6x faster than fp32 under OpenVINO with the same lfw-dev accuracy
(bench/results/cpu-runtimes.md), but a CPU without native bf16 (no AVX512_BF16 / AMX) emulates it
slowly, and a model whose weights do not survive 8 mantissa bits would answer differently. So the
choice takes two facts: OpenVINO's ``OPTIMIZATION_CAPABILITIES`` for the CPU (``BF16`` listed only where
it is native) and the cosine between the bundle's golden outputs (its fp32 reference, stored at
conversion) and what a bf16 session gives on the golden inputs. bf16 only if that cosine is at least
``BF16_MIN_COSINE`` for every golden case and output. The decision is made once per bundle file and
process, logged, and shown in the model's metadata.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from facepipe.models.bundle import Bundle
from facepipe.models.control import golden

log = logging.getLogger(__name__)

BF16_MIN_COSINE = 0.999  # per golden case and output, against the bundle's fp32 reference


@dataclass(slots=True, frozen=True)
class Choice:
    """The precision a session runs at, and why (for the log and the model's metadata)."""

    precision: str  # "fp32", "bf16" or "fp16"
    requested: str  # what the config asked for ("auto", "fp32", ...)
    reason: str
    cosine: float | None = None  # golden cosine of the bf16 session, where it was measured

    def parameters(self) -> dict[str, str]:
        out = {"precision": self.precision, "precision_requested": self.requested}
        if self.cosine is not None:
            out["precision_golden_cosine"] = f"{self.cosine:.6f}"
        out["precision_reason"] = self.reason
        return out


def choose(capabilities: Sequence[str], golden_cosine: Callable[[], float]) -> Choice:
    """``auto`` on an OpenVINO CPU: bf16 iff ``BF16`` is in ``capabilities`` and ``golden_cosine()``
    (called only then) is at least ``BF16_MIN_COSINE``; fp32 otherwise."""
    if "BF16" not in capabilities:
        return Choice("fp32", "auto", "CPU lacks native bf16 (no BF16 in OPTIMIZATION_CAPABILITIES)")
    cosine = golden_cosine()
    if not np.isfinite(cosine) or cosine < BF16_MIN_COSINE:
        return Choice(
            "fp32", "auto", f"bf16 golden cosine {cosine:.6f} below {BF16_MIN_COSINE}", float(cosine)
        )
    return Choice("bf16", "auto", f"native bf16, golden cosine >= {BF16_MIN_COSINE}", float(cosine))


def min_cosine(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> float:
    """The smallest cosine, per sample (axis 0) and output, between two sets of outputs."""
    worst = 1.0
    for g, w in zip(got, want, strict=True):
        if g.shape != w.shape:
            return float("-inf")
        a = g.reshape(len(g), -1).astype(np.float64)
        b = w.reshape(len(w), -1).astype(np.float64)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        same = np.all(a == b, axis=1)  # also an all-zero output given exactly
        cos = np.where(same, 1.0, np.sum(a * b, axis=1) / np.maximum(norms, 1e-30))
        worst = min(worst, float(np.min(cos)))
    return worst


def cpu_capabilities() -> list[str]:
    from facepipe.runtime.openvino import capabilities

    return capabilities()


def bf16_golden_cosine(bundle: Bundle) -> float:
    """The golden inputs through a 1-thread bf16 OpenVINO session, against the golden outputs
    (-inf for a bundle without golden cases: nothing shows bf16 keeps its answers)."""
    from facepipe.runtime.openvino import OpenVinoSession

    cases = golden(bundle) if bundle.golden_path.is_file() else []
    if not cases:
        return float("-inf")
    session = OpenVinoSession(bundle, 1, "bf16")
    return min(min_cosine(session.run(inputs), outs) for inputs, outs in cases)


def fixed(requested: str, engine: str) -> Choice:
    """A precision the config names, or ``auto`` where only fp32 applies."""
    if requested != "auto":
        return Choice(requested, requested, "set in config")
    return Choice("fp32", "auto", f"{engine}: auto is fp32 (bf16 is chosen only under OpenVINO on CPU)")


_decided: dict[tuple[str, float], Choice] = {}
_lock = threading.Lock()


def resolve(bundle: Bundle, requested: str, engine: str) -> Choice:
    """The precision a session of ``bundle`` under ``engine`` runs at for ``requested``; ``auto`` is
    decided once per bundle file (path and modification time) in this process."""
    if requested != "auto" or engine != "openvino":
        return fixed(requested, engine)
    path = bundle.model_path.resolve()
    key = (str(path), path.stat().st_mtime)
    with _lock:  # workers opening sessions at once wait for one decision
        if key not in _decided:
            choice = choose(cpu_capabilities(), lambda: bf16_golden_cosine(bundle))
            cos = "-" if choice.cosine is None else f"{choice.cosine:.6f}"
            log.info(
                "%s: precision auto -> %s (%s; bf16 golden cosine %s)",
                bundle.path,
                choice.precision,
                choice.reason,
                cos,
            )
            _decided[key] = choice
        return _decided[key]
