"""What the protocol edges share: the services and models to serve, metrics, readiness, limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facepipe.api.limits import PixelBudget
from facepipe.engine.metrics import Metrics
from facepipe.engine.pipeline import Pipeline
from facepipe.errors import NotFound
from facepipe.models.control import ModelControl
from facepipe.models.repository import Repository
from facepipe.models.servable import InferModel, SeedService
from facepipe.models.versions import Versions


@dataclass(slots=True)
class ServerState:
    seed: dict[str, SeedService]
    models: dict[str, Versions[InferModel]]  # name -> its loaded versions
    repository: Repository | None = None
    max_body_bytes: int = 20 * 1024 * 1024
    json_numbers: bool = False
    ready: bool = False
    sticky_header: str = "x-variant-key"  # a request header that keeps a user on one A/B variant
    statuses: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # load failures
    control: ModelControl | None = None
    authorize: Callable[[str | None], None] = lambda _key: None  # raises unless the key may administer
    key_role: Callable[[str | None], str] = lambda _key: "read"  # admin, read or none (for the web UI)
    crops: Versions[Any] | None = None  # the built-in ArcFace versions (kept for /v1 if an app renames)
    authorize_inference: Callable[[str | None], None] = lambda _key: None  # auth.protect_inference
    extra: list[Pipeline] = field(default_factory=list)  # pipelines served by the caller's own routes
    checks: list[Callable[[], str | None]] = field(default_factory=list)  # each: why not ready, or None
    budget: PixelBudget = field(default_factory=PixelBudget)  # decoded pixels, per request and server
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.pipelines)

    def pipelines(self) -> list[Pipeline]:
        seen: dict[int, Pipeline] = {id(p): p for p in self.extra}
        for _, v in self.crops.items() if self.crops is not None else []:
            seen[id(v.pipeline)] = v.pipeline
        for svc in self.seed.values():
            for _, v in svc.variants.items():
                seen[id(v.pipeline)] = v.pipeline
        for versions in self.models.values():
            for _, m in versions.items():
                p = getattr(m, "pipeline", None)
                if isinstance(p, Pipeline):
                    seen[id(p)] = p
        return list(seen.values())

    def versions(self, name: str) -> Versions[InferModel]:
        versions = self.models.get(name)
        if versions is None:
            raise NotFound(f"unknown model {name!r}; served: {sorted(self.models)}")
        return versions

    def model(self, name: str, version: str | None = None, sticky: str | None = None) -> InferModel:
        """Model ``name`` at ``version``; without one, the version its traffic split picks."""
        versions = self.versions(name)
        if version is None:
            chosen, model = versions.pick(sticky)
            self.metrics.variant(name, chosen)
            return model
        return versions.get(version)

    def index(self) -> list[dict[str, str]]:
        """The repository index (KServe repository extension): every version, its state and why; then
        every served pipeline that is not a bundle (the seed ``ArcFace`` service), version by version."""
        served = {(n, v) for n, vs in self.models.items() for v in vs.names()}
        entries = self.repository.index() if self.repository is not None else []
        rows = []
        for e in entries:
            row = {"name": e.name, "version": e.version, "state": e.state, "reason": e.reason}
            if e.state == "READY" and (e.name, e.version) not in served:
                state, reason = self.statuses.get((e.name, e.version), ("UNAVAILABLE", "not loaded"))
                row |= {"state": state, "reason": reason}
            rows.append(row)
        bundles = {e.name for e in entries}
        for name in sorted(set(self.models) - bundles):
            versions = self.models[name].names()
            rows += [{"name": name, "version": v, "state": "READY", "reason": "pipeline"} for v in versions]
            if not versions:
                rows.append(
                    {"name": name, "version": "", "state": "UNAVAILABLE", "reason": "no version loaded"}
                )
        return rows

    def label(self, kind: str, name: str) -> str:
        """A metric label from a closed set: a name the server serves, or ``other`` for any name a
        client made up (labels from request paths would otherwise grow without bound)."""
        known = name in self.seed or name in self.models
        return f"{kind}:{name}" if known else f"{kind}:other"

    def problems(self) -> list[str]:
        """Why the server should not get traffic now (empty: it may), beyond ``ready`` itself."""
        return [p for p in (check() for check in self.checks) if p]

    def healthy(self) -> bool:
        """Readiness: started, not draining, and every check passes (e.g. the gallery can write)."""
        return self.ready and not self.problems()

    def in_flight(self) -> int:
        return sum(p.in_flight for p in self.pipelines())
