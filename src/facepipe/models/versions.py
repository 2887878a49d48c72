"""The served versions of one model or service, and which one answers a request.

Versions are published atomically (a new dict each change): a request picks from one snapshot and
keeps the version it picked until it finishes, however the set changes meanwhile. Without weights the
newest version answers everything; with weights (an A/B split such as ``{"1": 90, "2": 10}``) each
request draws a version at random, or, given a sticky key (a user id from a header), by a hash of the
key, so that one user always meets the same variant while the weights stay the same.
"""

from __future__ import annotations

import hashlib
import random
from typing import Generic, TypeVar

from facepipe.errors import InvalidInput, NotFound

T = TypeVar("T")
MAX_WEIGHT = 1e6  # an A/B weight: any scale up to this
VARIANT = "x-facepipe-variant"  # response header (gRPC: metadata): the version that answered


def _order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


class Versions(Generic[T]):
    def __init__(self, name: str, served: dict[str, T] | None = None) -> None:
        self.name = name
        self._served: dict[str, T] = dict(served or {})
        self._weights: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._served)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._served.items(), key=lambda kv: _order(kv[0]))

    def names(self) -> list[str]:
        return [v for v, _ in self.items()]

    def latest(self) -> str:
        if not self._served:
            raise NotFound(f"model {self.name!r} has no version loaded")
        return max(self._served, key=_order)

    def get(self, version: str | None = None) -> T:
        chosen = self.latest() if version is None else version
        served = self._served
        if chosen not in served:
            raise NotFound(f"model {self.name!r} has no version {chosen!r} loaded (loaded: {self.names()})")
        return served[chosen]

    def put(self, version: str, item: T) -> T | None:
        old = self._served.get(version)
        self._served = {**self._served, version: item}
        return old

    def remove(self, version: str) -> T | None:
        served = dict(self._served)
        old = served.pop(version, None)
        self._served = served
        return old

    @property
    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    def set_weights(self, weights: dict[str, float]) -> None:
        """Split traffic by ``weights`` (version -> share, any scale); empty: newest version only."""
        for version, w in weights.items():
            # finite and bounded: NaN compares false everywhere, and 1e308 + 1e308 is inf
            if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w <= MAX_WEIGHT:
                raise InvalidInput(
                    f"weights.{version}: expected a number from 0 to {MAX_WEIGHT:g}, got {w!r}"
                )
        if weights and sum(weights.values()) <= 0:
            raise InvalidInput("weights: at least one version needs a weight above 0")
        self._weights = {str(k): float(v) for k, v in weights.items()}

    def pick(self, key: str | None = None) -> tuple[str, T]:
        """The version that answers this request, by weight (sticky by ``key``) or the newest."""
        served = self._served
        live = {v: w for v, w in self._weights.items() if v in served and w > 0}
        if not live:
            version = self.latest()
            return version, served[version]
        total = sum(live.values())
        if key is None:
            point = random.random() * total
        else:
            digest = hashlib.blake2b(f"{self.name}\0{key}".encode(), digest_size=8).digest()
            point = int.from_bytes(digest, "big") / 2**64 * total
        for version, w in sorted(live.items(), key=lambda kv: _order(kv[0])):
            point -= w
            if point < 0:
                return version, served[version]
        return version, served[version]
