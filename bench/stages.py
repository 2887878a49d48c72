"""The engine's per-stage counters, read from a running server's /metrics."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

PREFIX, SUFFIX = "facepipe_stage_", "_total"


def stage_counters(url: str) -> dict[tuple[str, str], dict[str, float]]:
    """``{(pipeline, stage): {"items": n, "batches": n, "compute_seconds": s, ...}}`` so far."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for s in family.samples:
            if s.name.startswith(PREFIX) and s.name.endswith(SUFFIX):
                name = s.name[len(PREFIX) : -len(SUFFIX)]
                out.setdefault((s.labels["pipeline"], s.labels["stage"]), {})[name] = s.value
    return out
