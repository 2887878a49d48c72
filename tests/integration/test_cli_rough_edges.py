"""What a new user hits first, against a real server: ``identify -k``, a quiet CLI (``-v`` for request
logs), one JSON shape for a face in the CLI, HTTP, gRPC and the client, bulk enrolment that names bad
files and leaves no empty subject, a helpful message for the gRPC port as ``--url``, documented exit
codes, ``eval lfw --detector`` with a progress bar."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from typer.testing import CliRunner

from facepipe.cli import app
from facepipe.client import Client
from facepipe.client.shapes import to_json
from tests.integration.conftest import Running
from tests.integration.test_client_cli import cserver  # noqa: F401  (a server with API keys)
from tests.integration.test_gallery_api import ADMIN, people

runner = CliRunner()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "facepipe.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_identify_takes_k_and_answers_the_http_shape(cserver: Running, lfw_dir: Path) -> None:  # noqa: F811
    who = people(lfw_dir, 3, 2)
    with Client(cserver.url, ADMIN) as c:
        for name, paths in who.items():
            c.create_subject(name, id=f"k-{name}")
            c.enrol(f"k-{name}", [paths[0]])
    probe = next(iter(who.values()))[1]
    r = runner.invoke(
        app, ["identify", str(probe), "-k", "3", "--json", "--url", cserver.url, "--api-key", ADMIN]
    )
    assert r.exit_code == 0, r.output
    face = json.loads(r.stdout)[0]["faces"][0]
    assert len(face["matches"]) == 3 and face["matches"][0]["match"] is True
    http = httpx.post(
        cserver.url + "/v1/identify",
        files=[("image", probe.read_bytes())],
        data={"k": "3"},
        headers={"x-api-key": ADMIN},
    ).json()["results"][0]["faces"][0]
    assert face == http  # the CLI's JSON is the server's JSON
    listed = runner.invoke(app, ["gallery", "list", "--json", "--url", cserver.url, "--api-key", ADMIN])
    subjects = httpx.get(cserver.url + "/v1/subjects", params={"limit": 1000}, headers={"x-api-key": ADMIN})
    assert json.loads(listed.stdout) == subjects.json()["subjects"]


def test_one_face_shape_in_cli_http_grpc_and_client(cserver: Running, lfw_dir: Path) -> None:  # noqa: F811
    (a, b), *_ = people(lfw_dir, 1, 2).values()
    http = httpx.post(cserver.url + "/v1/detect", files=[("image", a.read_bytes())]).json()["results"][0]
    out = runner.invoke(app, ["detect", str(a), "--json", "--url", cserver.url])
    assert json.loads(out.stdout)[0] == http
    assert set(http["faces"][0]) == {"box", "score", "size", "landmarks", "quality"}  # no nulls or empties
    assert set(http["faces"][0]["box"]) == {"x1", "y1", "x2", "y2"}
    for grpc in (None, cserver.grpc):
        with Client(cserver.url, grpc=grpc) as c:
            assert to_json(c.detect([a])[0]) == http, grpc
    verify = runner.invoke(app, ["verify", str(a), str(b), "--json", "--url", cserver.url])
    doc = json.loads(verify.stdout)
    assert doc["match"] is True and doc["model"]["name"] == "mobilefacenet" and len(doc["faces"]) == 2
    assert (
        doc
        == httpx.post(cserver.url + "/v1/verify", files=[("a", a.read_bytes()), ("b", b.read_bytes())]).json()
    )
    embed = runner.invoke(app, ["embed", str(a), "--json", "--url", cserver.url])
    assert len(json.loads(embed.stdout)[0]["faces"][0]["embedding"]) == 192
    table = runner.invoke(app, ["embed", str(a), "--url", cserver.url])
    assert table.exit_code == 0 and "192" in table.stdout


def test_quiet_by_default_and_request_logs_with_v(cserver: Running, lfw_dir: Path) -> None:  # noqa: F811
    (a,), *_ = people(lfw_dir, 1, 1).values()
    quiet = cli("detect", str(a), "--url", cserver.url)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = cli("-v", "detect", str(a), "--url", cserver.url)
    assert loud.returncode == 0 and "HTTP Request: POST" in loud.stderr


def test_enroll_names_bad_files_and_leaves_no_empty_subject(
    cserver: Running,  # noqa: F811
    lfw_dir: Path,
    tmp_path: Path,
) -> None:
    (good_name, good), (bad_name, _) = people(lfw_dir, 2, 2).items()
    root = tmp_path / "people"
    (root / good_name).mkdir(parents=True)
    (root / bad_name).mkdir(parents=True)
    for p in good:
        shutil.copy(p, root / good_name / p.name)
    (root / good_name / "notes.jpg").write_bytes(b"these are notes, not a photo")
    (root / bad_name / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    args = ["--url", cserver.url, "--api-key", ADMIN]
    first = cli("gallery", "enroll", str(root), *args)
    assert first.returncode == 2, first.stderr
    assert "2 faces enrolled to 1 subjects" in first.stdout
    assert "notes.jpg" in first.stderr and "broken.png" in first.stderr and "image[" not in first.stderr
    with Client(cserver.url, ADMIN) as c:
        assert len(c.faces(good_name)) == 2
        ids = {s.id for s in c.subjects(0, 1000)[0]}
    assert bad_name not in ids  # its only file failed: no empty subject left behind
    (root / good_name / "notes.jpg").unlink()
    shutil.rmtree(root / bad_name)
    again = cli("gallery", "enroll", str(root), *args)
    assert again.returncode == 0 and "nothing to enrol: all 2 images are already enrolled" in again.stdout


def test_grpc_port_as_url_and_exit_codes(cserver: Running, lfw_dir: Path) -> None:  # noqa: F811
    (a,), *_ = people(lfw_dir, 1, 1).values()
    wrong = cli("detect", str(a), "--url", f"http://{cserver.grpc}")
    assert wrong.returncode == 3 and "gRPC port" in wrong.stderr, wrong.stderr
    no_route = cli("detect", str(a), "--url", cserver.url + "/nowhere")
    assert no_route.returncode == 2 and "no route" in no_route.stderr, no_route.stderr
    missing = cli("gallery", "delete", "nobody-here", "--url", cserver.url, "--api-key", ADMIN)
    assert missing.returncode == 2 and "nobody-here" in missing.stderr


def test_eval_lfw_detector_and_progress(cserver: Running, lfw_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    lines = (lfw_dir / "pairs.txt").read_text().splitlines()
    small = tmp_path / "lfw"
    small.mkdir()
    (small / "images").symlink_to(lfw_dir / "images")
    (small / "pairs.txt").write_text("\n".join(["1\t3", *lines[1:4], *lines[301:304]]) + "\n")
    args = ["eval", "lfw", "--data", str(small), "--url", cserver.url, "--json"]
    done = cli(*args, "--detector", "blazeface")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["detector"] == "blazeface" and "embedding (blazeface)" in done.stderr
    assert "HTTP Request" not in done.stderr
    refused = cli(*args, "--detector", "nope")
    assert refused.returncode == 2 and "detector 'nope' is not available" in refused.stderr


def test_bench_shows_a_bar_per_level(cserver: Running, lfw_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    (a,), *_ = people(lfw_dir, 1, 1).values()
    args = ["--url", cserver.url, "--protocol", "v1-detect", "--duration", "1", "--warmup", "0.5"]
    done = cli("bench", "run", str(a), *args, "--concurrency", "1,2")
    assert done.returncode == 0, done.stderr
    for bar in ("warm-up", "concurrency 1", "concurrency 2"):
        assert re.search(rf"^{bar} +━+ 100%", done.stderr, re.M), done.stderr  # the bar, not the summary
    assert "HTTP Request" not in done.stderr
    gone = cli("bench", "run", str(a), "--url", "http://127.0.0.1:9", "--protocol", "v1-detect")
    assert gone.returncode == 3 and "cannot reach" in gone.stderr and "Traceback" not in gone.stderr
