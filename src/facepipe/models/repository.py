"""The model repository: ``<root>/<model>/<version>/`` bundles, newest version by default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facepipe.errors import ModelError, NotFound
from facepipe.models.bundle import MANIFEST, Bundle, load_bundle


@dataclass(slots=True)
class Entry:
    name: str
    version: str
    state: str
    reason: str = ""


class Repository:
    def __init__(self, root: Path) -> None:
        self.root = root

    def versions(self, name: str) -> list[int]:
        base = self.root / name
        if not base.is_dir():
            return []
        return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and (p / MANIFEST).is_file())

    def bundle(self, name: str, version: int | None = None) -> Bundle:
        versions = self.versions(name)
        if not versions:
            raise NotFound(
                f"model {name!r} is not in the repository {self.root} (run `facepipe models pull`)"
            )
        chosen = versions[-1] if version is None else version
        if chosen not in versions:
            raise NotFound(f"model {name!r} has no version {chosen} (versions: {versions})")
        return load_bundle(self.root / name / str(chosen))

    def index(self) -> list[Entry]:
        out = []
        for model_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for version in self.versions(model_dir.name):
                try:
                    load_bundle(model_dir / str(version))
                    out.append(Entry(model_dir.name, str(version), "READY"))
                except ModelError as exc:
                    out.append(Entry(model_dir.name, str(version), "UNAVAILABLE", exc.message))
        return out
