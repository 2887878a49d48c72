"""API keys for the routes that change the gallery (and admin routes) and those that read it.

Keys come from config (``auth.api_keys``, ``auth.read_keys``) and the environment (FACEPIPE_API_KEYS,
FACEPIPE_READ_KEYS, comma-separated). They are compared in constant time, every key every time.

Collections (``/v1/collections``): the config's admin keys are the server's, good for every collection
and for managing collections; its read keys read the default collection. Each other collection has
keys of its own, made with it and kept in the store as SHA-256 digests (``collection_role`` looks one
up): a collection's key works on its own collection only, and any other collection answers 403.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from facepipe.config import MIN_KEY_LENGTH, AuthConfig
from facepipe.errors import ConfigError, Forbidden, Unauthorized

HEADER = "x-api-key"
Role = Literal["admin", "read", "none"]
HOW = (
    "set auth.api_keys in config.yml or FACEPIPE_API_KEYS in the environment (keys of 16+ characters), "
    f"then send the key in the {HEADER!r} header"
)


def _env(name: str) -> list[str]:
    """Keys from environment variable ``name``, held to the same policy as config-file keys."""
    keys = [k.strip() for k in os.environ.get(name, "").split(",") if k.strip()]
    for i, k in enumerate(keys):
        if len(k) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"{name}: key {i + 1} has {len(k)} characters; keys need {MIN_KEY_LENGTH} or more"
            )
    return keys


def _matches(key: bytes, keys: list[bytes]) -> bool:
    found = False
    for k in keys:
        found |= hmac.compare_digest(key, k)
    return found


# key, may it look at the store (blocking) -> (collection, admin|read), or None
CollectionRole = Callable[[str, bool], tuple[str, str] | None]


@dataclass(slots=True)
class ApiKeys:
    admin: list[bytes]
    read: list[bytes]
    protect_inference: bool = False
    collection_role: CollectionRole | None = None

    @classmethod
    def from_config(cls, config: AuthConfig) -> ApiKeys:
        admin = [*config.api_keys, *_env("FACEPIPE_API_KEYS")]
        read = [*config.read_keys, *_env("FACEPIPE_READ_KEYS")]
        if config.protect_inference and not (admin or read):
            raise ConfigError(f"auth.protect_inference: true needs at least one key: {HOW}")
        return cls([k.encode() for k in admin], [k.encode() for k in read], config.protect_inference)

    def check_inference(self, key: str | None) -> None:
        """Inference (detect, embed, verify, seed, KServe): open unless ``auth.protect_inference``,
        then a read or admin key."""
        if self.protect_inference and self._collection_key(key, look=False) is None:
            self.check(key, "read")

    def role(self, key: str | None) -> Role:
        """What ``key`` may do: ``admin`` (change the gallery and models), ``read`` (read and identify;
        also any caller while no key is configured), or ``none`` (a key is needed and this one is not
        known)."""
        raw = (key or "").encode()
        if raw and _matches(raw, self.admin):
            return "admin"
        if (raw and _matches(raw, self.read)) or not (self.admin or self.read):
            return "read"
        return "none"

    def check(self, key: str | None, need: Literal["read", "write"]) -> None:
        """Raise unless ``key`` may ``need``: write needs an admin key (and one configured); read
        needs any key once keys are configured, and is open while none is."""
        if need == "write" and not self.admin:
            raise Forbidden(f"this route changes the gallery and no API key is configured: {HOW}")
        if need == "read" and not (self.admin or self.read):
            return
        if not key:
            raise Unauthorized(f"missing API key: send it in the {HEADER!r} header")
        raw = key.encode()
        if _matches(raw, self.admin):
            return
        if _matches(raw, self.read):
            if need == "read":
                return
            raise Forbidden("this API key is read-only: changing the gallery needs an admin key")
        raise Unauthorized("API key not recognised")

    def _collection_key(self, key: str | None, look: bool = True) -> tuple[str, str] | None:
        """(collection, role) of a collection's key; ``look``: a key this process does not know may
        be looked up in the store (blocking: not on the event loop)."""
        if not key or self.collection_role is None:
            return None
        return self.collection_role(key, look)

    def check_server(self, key: str | None) -> None:
        """Managing collections: a server admin key (the config's) only."""
        if self._collection_key(key, look=False) is not None:
            raise Forbidden("a collection's key cannot manage collections: use a server admin key")
        self.check(key, "write")

    def check_collection(
        self,
        key: str | None,
        collection: str,
        need: Literal["read", "write"],
        default: bool,
        look: bool = True,
    ) -> None:
        """Raise unless ``key`` may ``need`` on ``collection`` (``default``: it is the default
        collection, where the config's keys work as they always did; ``look``: as for
        ``_collection_key``)."""
        found = self._collection_key(key, look)
        if found is not None:
            owner, role = found
            if owner != collection:
                raise Forbidden(
                    f"this API key is collection {owner!r}'s: it cannot read or change collection"
                    f" {collection!r}"
                )
            if need == "write" and role != "admin":
                raise Forbidden("this API key is read-only: changing the collection needs its admin key")
            return
        if default:
            self.check(key, need)
            return
        if not key:
            raise Unauthorized(f"missing API key: send it in the {HEADER!r} header")
        if _matches(key.encode(), self.admin):
            return
        if _matches(key.encode(), self.read):
            raise Forbidden(f"this read key is the default collection's: it cannot read {collection!r}")
        raise Unauthorized("API key not recognised")
