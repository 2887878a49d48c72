"""``facepipe bench`` and ``facepipe eval`` against a real server: every protocol, both load modes,
result files, pictures, comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facepipe.cli import app
from tests.integration.conftest import Running

runner = CliRunner()


@pytest.fixture(scope="module")
def faces(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("faces")
    for p in sorted((lfw_dir / "images").glob("*/*.jpg"))[:12]:
        (folder / p.name).write_bytes(p.read_bytes())
    return folder


@pytest.mark.parametrize("protocol", ["seed", "kserve", "v1-detect", "seed-grpc", "kserve-grpc"])
def test_bench_every_protocol(server: Running, faces: Path, tmp_path: Path, protocol: str) -> None:
    out = tmp_path / "r.json"
    args = ["bench", "run", str(faces), "--url", server.url, "--grpc", server.grpc, "--protocol", protocol]
    r = runner.invoke(
        app, [*args, "--concurrency", "1,4", "--duration", "1", "--warmup", "0.3", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    result = json.loads(out.read_text())
    assert [lv["concurrency"] for lv in result["levels"]] == [1, 4]
    for lv in result["levels"]:
        assert lv["requests"] > 0 and lv["errors"] == {} and lv["p99_ms"] >= lv["p50_ms"] > 0


def test_open_loop_rate_plot_and_compare(server: Running, faces: Path, tmp_path: Path) -> None:
    a, b, png = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "a.png"
    base = ["bench", "run", str(faces), "--url", server.url, "--duration", "2", "--warmup", "0"]
    r = runner.invoke(app, [*base, "--rate", "20", "--out", str(a), "--plot", str(png)])
    assert r.exit_code == 0, r.output
    level = json.loads(a.read_text())["levels"][0]
    assert json.loads(a.read_text())["mode"] == "rate" and 20 <= level["requests"] <= 70  # ~40 Poisson
    assert png.read_bytes()[:4] == b"\x89PNG"
    runner.invoke(app, [*base, "--rate", "20", "--out", str(b)])
    cmp = runner.invoke(app, ["bench", "compare", str(a), str(b)])
    assert cmp.exit_code == 0 and "x" in cmp.stdout


def test_bench_refuses_bad_arguments(server: Running, faces: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["bench", "run", str(faces), "--url", server.url, "--protocol", "smtp"])
    assert r.exit_code != 0 and "protocol" in str(r.exception)
    empty = tmp_path / "empty"
    empty.mkdir()
    r = runner.invoke(app, ["bench", "run", str(empty), "--url", server.url])
    assert r.exit_code != 0 and "no images" in str(r.exception)


def test_eval_pairs_and_small_lfw(server: Running, photos_dir: Path, lfw_dir: Path, tmp_path: Path) -> None:
    r = runner.invoke(
        app,
        [
            "eval",
            "pairs",
            str(photos_dir / "master.csv"),
            "--url",
            server.url,
            "--json",
            "--plots",
            str(tmp_path / "p"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["correct"] == 300
    assert (tmp_path / "p-roc.png").exists() and (tmp_path / "p-scores.png").exists()
    lines = (lfw_dir / "pairs.txt").read_text().splitlines()
    small = tmp_path / "lfw"
    small.mkdir()
    (small / "images").symlink_to(lfw_dir / "images")
    (small / "pairs.txt").write_text("\n".join(["1\t10", *lines[1:11], *lines[301:311]]) + "\n")
    r = runner.invoke(app, ["eval", "lfw", "--data", str(small), "--url", server.url, "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["pairs"] == 20 and res["folds"] == 1 and res["accuracy"] >= 0.9
