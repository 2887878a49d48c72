"""What the CLI commands share: the server-install check and exit codes."""

from __future__ import annotations

import pytest

from facepipe.cli import common
from facepipe.errors import InvalidInput, MissingDependency, Unreachable


def test_need_server_passes_on_a_server_install() -> None:
    common.need_server("serve")  # this venv has the server extra (make installs .[server,...])


def test_need_server_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "SERVER_MODULES", ("numpy", "facepipe_no_such_module"))
    want = r"missing: facepipe_no_such_module\): pip install 'facepipe\[server\]'"
    with pytest.raises(MissingDependency, match=want):
        common.need_server("serve")


def test_exit_codes() -> None:
    assert common.exit_code(MissingDependency("x")) == common.EXIT_REFUSED
    assert common.exit_code(InvalidInput("x")) == common.EXIT_REFUSED
    assert common.exit_code(Unreachable("x")) == common.EXIT_SERVER
