"""``facepipe gallery export|import|migrate``: the commands on real stores (SQLite and PostgreSQL),
through the CLI's own entry point in a subprocess (exit codes and messages as a user sees them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from facepipe.gallery import collection_store
from facepipe.gallery.backends import open_store
from tests.gallery.test_archive import fill, fill_collection, snapshot
from tests.pg_server import PgServer

ROOT = Path(__file__).resolve().parents[2]


def facepipe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT)}
    code = "from facepipe.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_export_import_migrate(postgres: PgServer, tmp_path: Path) -> None:
    pg_url = postgres.new_database()
    source = open_store("sqlite:///src.db", tmp_path)
    fill(source, subjects=4, per=3)
    want = snapshot(source)

    done = facepipe("gallery", "export", "g.tgz", "--store", "sqlite:///src.db", "--data", ".", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "4 subjects and 12 faces written to g.tgz" in done.stdout

    args = ["gallery", "import", "g.tgz", "--store", pg_url, "--model", "mobilefacenet/1"]
    done = facepipe(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "4 subjects and 12 faces imported; 0 subjects and 0 faces already there" in done.stdout
    done = facepipe(*args, cwd=tmp_path)
    assert "0 subjects and 0 faces imported; 4 subjects and 12 faces already there" in done.stdout
    target = open_store(pg_url, tmp_path)
    assert snapshot(target) == want

    refused = facepipe(
        "gallery", "import", "g.tgz", "--store", "sqlite:///x.db", "--model", "arcface/2", cwd=tmp_path
    )
    assert refused.returncode == 2 and "made by mobilefacenet/1, not arcface/2" in refused.stderr

    args = [
        "gallery",
        "migrate",
        "--from",
        pg_url,
        "--to",
        "sqlite:///copy.db",
        "--data",
        ".",
        "--batch",
        "5",
    ]
    done = facepipe(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "4 subjects and 12 faces copied" in done.stdout
    assert (tmp_path / "gallery-migrate.cursor").is_file()
    assert snapshot(open_store("sqlite:///copy.db", tmp_path)) == want
    done = facepipe(*args, cwd=tmp_path)  # the cursor is at the end: nothing left to copy
    assert "0 subjects and 0 faces copied" in done.stdout, done.stderr


@pytest.mark.parametrize("spec", ["mobilefacenet", "/1", "m/"])
def test_a_model_must_be_name_and_version(spec: str, tmp_path: Path) -> None:
    done = facepipe("gallery", "import", __file__, "--store", "sqlite:///x.db", "--model", spec, cwd=tmp_path)
    assert done.returncode == 2 and "is not NAME/VERSION" in done.stderr


def test_export_one_collection_and_import_it_into_another(tmp_path: Path) -> None:
    source = open_store("sqlite:///src.db", tmp_path)
    fill(source, subjects=2, per=1)
    fill_collection(source, "shop", 3)
    source.close()
    done = facepipe(
        "gallery", "export", "shop.tar", "--store", "sqlite:///src.db", "--data", ".", "--collection", "shop",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0 and "3 subjects and 3 faces written" in done.stdout, done.stderr
    target = open_store("sqlite:///dst.db", tmp_path)
    target.write(lambda tx: collection_store.insert(tx, "branch", None, None))
    args = ["gallery", "import", "shop.tar", "--store", "sqlite:///dst.db", "--data", "."]
    refused = facepipe(*args, cwd=tmp_path)
    assert refused.returncode == 2 and "collection 'shop' is not in the target store" in refused.stderr
    done = facepipe(*args, "--collection", "branch", cwd=tmp_path)
    assert done.returncode == 0 and "3 subjects and 3 faces imported" in done.stdout, done.stderr
    assert [s.id for s in target.subjects(0, 10, collection="branch")[0]] == ["p0-00", "p0-01", "p0-02"]
    target.close()
