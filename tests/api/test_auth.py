"""API keys: admin keys write, read keys read, nothing configured means no writes."""

from __future__ import annotations

import pytest

from facepipe.api.auth import ApiKeys
from facepipe.config import AuthConfig
from facepipe.errors import ConfigError, Forbidden, Unauthorized

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


def test_keys_from_the_environment_meet_the_same_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22 item 6: ``abc`` from FACEPIPE_API_KEYS was accepted; config-file keys need 16."""
    for var in ("FACEPIPE_API_KEYS", "FACEPIPE_READ_KEYS"):
        monkeypatch.setenv(var, f"{ADMIN},abc")
        with pytest.raises(ConfigError, match=f"{var}: key 2 has 3 characters; keys need 16"):
            ApiKeys.from_config(AuthConfig())
        monkeypatch.delenv(var)


def test_protect_inference_needs_a_read_or_admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEPIPE_API_KEYS", raising=False)
    monkeypatch.delenv("FACEPIPE_READ_KEYS", raising=False)
    ApiKeys.from_config(AuthConfig(read_keys=[READ])).check_inference(None)  # off: open
    keys = ApiKeys.from_config(AuthConfig(api_keys=[ADMIN], read_keys=[READ], protect_inference=True))
    keys.check_inference(READ)
    keys.check_inference(ADMIN)
    with pytest.raises(Unauthorized, match="missing"):
        keys.check_inference(None)
    with pytest.raises(Unauthorized, match="not recognised"):
        keys.check_inference("x" * 20)
    with pytest.raises(ConfigError, match=r"auth\.protect_inference"):
        ApiKeys.from_config(AuthConfig(protect_inference=True))
