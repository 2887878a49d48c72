"""Bundles named by DAG nodes, bound to the runtime that config.yml gives each node: the server's
side of ``facepipe.engine.Models``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facepipe.config import Config
from facepipe.models.bundle import Bundle, Manifest
from facepipe.models.repository import Repository
from facepipe.runtime import RuntimeSpec, open_session, runtime_spec


@dataclass(slots=True, frozen=True)
class BundleModel:
    """One bundle version and the runtime a node runs it with; pickles (for process ops)."""

    bundle: Bundle
    runtime: RuntimeSpec

    @property
    def name(self) -> str:
        return self.bundle.manifest.name

    @property
    def version(self) -> str:
        return str(self.bundle.manifest.version)

    @property
    def manifest(self) -> Manifest:
        return self.bundle.manifest

    def open(self) -> Any:
        return open_session(self.bundle, self.runtime)


@dataclass(slots=True)
class RepositoryModels:
    """Bundles from the repository (newest version unless ``pinned``), the runtime from
    ``op.<node>.local_service_conf``."""

    config: Config
    repo: Repository
    pinned: dict[str, Bundle] = field(default_factory=dict)
    specs: dict[str, RuntimeSpec] = field(default_factory=dict)  # a node's runtime decided by its caller

    def model(self, bundle: str, node: str) -> BundleModel:
        chosen = self.pinned.get(bundle) or self.repo.bundle(bundle)
        return BundleModel(chosen, self.specs.get(node) or runtime_spec(self.config.op_config(node)))
