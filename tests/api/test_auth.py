"""API keys: admin keys write, read keys read, nothing configured means no writes."""

from __future__ import annotations

import pytest

from facepipe.api.auth import ApiKeys
from facepipe.config import AuthConfig
from facepipe.errors import Forbidden, Unauthorized

ADMIN, READ = "admin-key-0123456789", "read-key-0123456789ab"


def test_no_keys_reads_open_writes_refused_with_how_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEPIPE_API_KEYS", raising=False)
    keys = ApiKeys.from_config(AuthConfig())
    keys.check(None, "read")
    with pytest.raises(Forbidden, match="FACEPIPE_API_KEYS"):
        keys.check(ADMIN, "write")


def test_admin_and_read_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPIPE_READ_KEYS", f" {READ} ,")
    keys = ApiKeys.from_config(AuthConfig(api_keys=[ADMIN]))
    keys.check(ADMIN, "write")
    keys.check(ADMIN, "read")
    keys.check(READ, "read")
    with pytest.raises(Forbidden, match="read-only"):
        keys.check(READ, "write")
    with pytest.raises(Unauthorized, match="missing"):
        keys.check(None, "read")
    with pytest.raises(Unauthorized, match="not recognised"):
        keys.check(ADMIN[:-1], "write")


def test_short_keys_are_refused_by_config() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        AuthConfig(api_keys=["short"])


def test_role_says_what_a_key_may_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEPIPE_API_KEYS", raising=False)
    monkeypatch.delenv("FACEPIPE_READ_KEYS", raising=False)
    keys = ApiKeys.from_config(AuthConfig(api_keys=[ADMIN], read_keys=[READ]))
    roles = [keys.role(k) for k in (ADMIN, READ, ADMIN[:-1], None, "")]
    assert roles == ["admin", "read", "none", "none", "none"]
    assert ApiKeys.from_config(AuthConfig()).role(None) == "read"  # no key configured: reads are open
