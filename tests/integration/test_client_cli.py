"""The client library and the CLI against a real server: typed results, mapped errors, exit codes,
bulk enrolment that resumes."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facepipe.cli import app
from facepipe.client import AsyncClient, Client
from facepipe.errors import Forbidden, InvalidInput, NotFound
from tests.integration.conftest import Running, start_server, stop_server
from tests.integration.test_gallery_api import ADMIN, AUTH, READ, people

runner = CliRunner()


@pytest.fixture(scope="module")
def cserver(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_server(models_dir, tmp_path_factory.mktemp("client"), AUTH)
    yield running
    stop_server(running)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_client_round_trip(cserver: Running, lfw_dir: Path, transport: str) -> None:
    ((name, paths),) = people(lfw_dir, 1, 3).items()
    grpc = cserver.grpc if transport == "grpc" else None
    with Client(cserver.url, ADMIN, grpc=grpc) as c:
        faces = c.detect([paths[0]])[0].faces
        assert len(faces) == 1 and faces[0].score > 0.9 and len(faces[0].landmarks) == 5
        emb = c.embed([paths[0]])[0].faces[0].embedding
        assert emb is not None and emb.shape == (192,) and abs(float(np.linalg.norm(emb)) - 1) < 1e-4
        assert c.verify(paths[0], paths[1]).match
        s = c.create_subject(name, id=f"{transport}-{name}", metadata={"k": 1})
        assert (s.id, s.metadata) == (f"{transport}-{name}", {"k": 1})
        enrolled = c.enrol(s.id, [paths[0], paths[1]])
        assert [f.created for f in enrolled.faces] == [True, True]
        assert c.identify([paths[2]])[0].faces[0].matches[0].subject == s.id
        assert c.identify_embeddings(emb[None])[0][0].similarity > 0.999
        assert len(c.faces(s.id)) == 2 and c.face_crop(enrolled.faces[0].id)[:4] == b"\x89PNG"
        out = c.infer("ArcFace", {"image": np.array([paths[0].read_bytes()], dtype=object)})
        assert out["embedding"].shape == (1, 192)
        assert c.delete_subject(s.id) == 2
        with pytest.raises(NotFound, match="no subject"):
            c.subject(s.id)
        with pytest.raises(InvalidInput, match="image"):
            c.detect([b"\xff\xd8\xff\xe0 not a jpeg"])
    with Client(cserver.url, READ, grpc=grpc) as c, pytest.raises(Forbidden, match="read-only"):
        c.create_subject("x")


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_async_client(cserver: Running, lfw_dir: Path, transport: str) -> None:
    paths = [p for ps in people(lfw_dir, 4, 1).values() for p in ps]
    grpc = cserver.grpc if transport == "grpc" else None

    async def run() -> list[int]:
        async with AsyncClient(cserver.url, READ, grpc=grpc) as c:
            results = await asyncio.gather(*(c.detect([p]) for p in paths))
            return [len(r[0].faces) for r in results]

    assert asyncio.run(run()) == [1, 1, 1, 1]


def test_cli_verify_exit_codes_and_json(cserver: Running, lfw_dir: Path) -> None:
    a, b = people(lfw_dir, 2, 2).values()
    same = runner.invoke(app, ["verify", str(a[0]), str(a[1]), "--url", cserver.url, "--json"])
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout)["match"] is True
    other = runner.invoke(app, ["verify", str(a[0]), str(b[0]), "--url", cserver.url])
    assert other.exit_code == 1 and "no match" in other.stdout
    detect = runner.invoke(app, ["detect", str(a[0]), "--url", cserver.url])
    assert detect.exit_code == 0 and a[0].name in detect.stdout


def test_cli_errors_have_exit_codes(cserver: Running, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 broken")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "facepipe.cli", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    refused = cli("detect", str(bad), "--url", cserver.url)
    assert refused.returncode == 2 and "image[0]" in refused.stderr
    unreachable = cli("detect", str(bad), "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr


def test_cli_gallery_enroll_resumes_and_identify(cserver: Running, lfw_dir: Path, tmp_path: Path) -> None:
    who = people(lfw_dir, 3, 3)
    root = tmp_path / "people"
    for name, paths in who.items():
        (root / name).mkdir(parents=True)
        for p in paths[:2]:
            shutil.copy(p, root / name / p.name)
    args = ["--url", cserver.url, "--api-key", ADMIN]
    first = runner.invoke(app, ["gallery", "enroll", str(root), *args])
    assert first.exit_code == 0, first.output
    assert "6 faces enrolled to 3 subjects" in first.stdout
    (name, paths), *_ = who.items()
    shutil.copy(paths[2], root / name / paths[2].name)
    again = runner.invoke(app, ["gallery", "enroll", str(root), *args])
    assert "1 faces enrolled to 1 subjects" in again.stdout  # only the new image was sent
    listed = runner.invoke(app, ["gallery", "list", "--json", *args])
    counts = {s["id"]: s["faces"] for s in json.loads(listed.stdout)}
    assert counts[name] == 3
    found = runner.invoke(app, ["identify", str(paths[2]), "--json", *args])
    assert found.exit_code == 0
    assert json.loads(found.stdout)[0]["faces"][0]["matches"][0]["subject"] == name
    gone = runner.invoke(app, ["gallery", "delete", name, *args])
    assert gone.exit_code == 0 and "3 faces" in gone.stdout
