"""The model repository: ``<root>/<model>/<version>/`` bundles, newest version by default.

With ``clean=True`` (config ``face.pack: clean``) it refuses every bundle whose weights may not be
used commercially: ``bundle()`` raises, ``index()`` lists it as UNAVAILABLE with the licence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facepipe.errors import ModelError, NotFound
from facepipe.models.bundle import MANIFEST, Bundle, Manifest, load_bundle
from facepipe.models.packs import known_licence


def licence_of(manifest: Manifest) -> tuple[str, bool]:
    """(licence, commercial use allowed). A pinned pack file's terms come from the pack table, so a
    bundle pulled before manifests recorded ``commercial`` is judged the same as a fresh one."""
    known = known_licence(manifest.source.sha256) if manifest.source.sha256 else None
    if known is not None:
        return known
    return manifest.source.licence or "unknown", manifest.source.commercial


def refusal(manifest: Manifest) -> str:
    """Why ``face.pack: clean`` refuses this bundle ('' if it does not)."""
    licence, commercial = licence_of(manifest)
    if commercial:
        return ""
    return (
        f"model {manifest.name!r}: licence {licence!r} does not allow commercial use, and face.pack is "
        "'clean' (only commercially usable bundles load; `facepipe models pull clean` installs them)"
    )


@dataclass(slots=True)
class Entry:
    name: str
    version: str
    state: str
    reason: str = ""


class Repository:
    def __init__(self, root: Path, clean: bool = False) -> None:
        self.root = root
        self.clean = clean

    def permitted(self, name: str) -> bool:
        """Whether the newest version of ``name`` may be loaded under this repository's licence policy."""
        if not self.clean:
            return True
        versions = self.versions(name)
        if not versions:
            return False
        try:
            return not refusal(load_bundle(self.root / name / str(versions[-1])).manifest)
        except ModelError:
            return False

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
        bundle = load_bundle(self.root / name / str(chosen))
        why = refusal(bundle.manifest) if self.clean else ""
        if why:
            raise ModelError(why)
        return bundle

    def index(self) -> list[Entry]:
        out = []
        for model_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for version in self.versions(model_dir.name):
                try:
                    bundle = load_bundle(model_dir / str(version))
                    why = refusal(bundle.manifest) if self.clean else ""
                    out.append(Entry(model_dir.name, str(version), "UNAVAILABLE" if why else "READY", why))
                except ModelError as exc:
                    out.append(Entry(model_dir.name, str(version), "UNAVAILABLE", exc.message))
        return out
