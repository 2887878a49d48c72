"""What the protocol edges share: the services and models to serve, metrics, readiness, limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from facepipe.errors import NotFound
from facepipe.serving.metrics import Metrics
from facepipe.serving.pipeline import Pipeline
from facepipe.serving.repository import Repository
from facepipe.serving.service import InferModel, SeedService


@dataclass(slots=True)
class ServerState:
    seed: dict[str, SeedService]
    models: dict[str, dict[str, InferModel]]  # name -> version -> model
    repository: Repository | None = None
    max_body_bytes: int = 20 * 1024 * 1024
    json_numbers: bool = False
    ready: bool = False
    extra: list[Pipeline] = field(default_factory=list)  # pipelines served by the caller's own routes
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.pipelines)

    def pipelines(self) -> list[Pipeline]:
        seen: dict[int, Pipeline] = {id(p): p for p in self.extra}
        for svc in self.seed.values():
            seen[id(svc.pipeline)] = svc.pipeline
        for versions in self.models.values():
            for m in versions.values():
                p = getattr(m, "pipeline", None)
                if isinstance(p, Pipeline):
                    seen[id(p)] = p
        return list(seen.values())

    def model(self, name: str, version: str | None = None) -> InferModel:
        versions = self.models.get(name)
        if not versions:
            raise NotFound(f"unknown model {name!r}; served: {sorted(self.models)}")
        if version is None:
            return versions[max(versions, key=lambda v: int(v) if v.isdigit() else -1)]
        if version not in versions:
            raise NotFound(f"model {name!r} has no version {version!r} (versions: {sorted(versions)})")
        return versions[version]

    def index(self) -> list[dict[str, str]]:
        """The repository index (KServe repository extension): every version, its state and why."""
        if self.repository is None:
            return []
        served = {(n, v) for n, vs in self.models.items() for v in vs}
        rows = []
        for e in self.repository.index():
            row = {"name": e.name, "version": e.version, "state": e.state, "reason": e.reason}
            if e.state == "READY" and (e.name, e.version) not in served:
                row |= {"state": "UNAVAILABLE", "reason": "not loaded"}
            rows.append(row)
        return rows

    def in_flight(self) -> int:
        return sum(p.in_flight for p in self.pipelines())
