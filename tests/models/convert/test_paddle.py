"""Paddle source layouts: which files are read, and the serving conf's feed/fetch names."""

from __future__ import annotations

from pathlib import Path

import pytest

from facepipe.errors import ConversionError
from facepipe.models.convert.paddle import find_paddle_files, read_serving_conf
from tests.models.convert.paddle_serving_conf import serving_conf


def _serving(root: Path, conf: bool = True) -> Path:
    server = root / "serving_server"
    server.mkdir(parents=True)
    (server / "__model__").write_bytes(b"p")
    (server / "__params__").write_bytes(b"w")
    if conf:
        conf_text = serving_conf(("x", "image"), ("fc.tmp_1", "emb"), 128)
        (server / "serving_server_conf.prototxt").write_text(conf_text)
    return server


def test_serving_layout_found_from_its_parent(tmp_path: Path) -> None:
    server = _serving(tmp_path)
    files = find_paddle_files(tmp_path)
    assert (files.model, files.params, files.conf) == (
        server / "__model__",
        server / "__params__",
        server / "serving_server_conf.prototxt",
    )
    assert find_paddle_files(server) == files


def test_serving_model_needs_params(tmp_path: Path) -> None:
    (_serving(tmp_path, conf=False) / "__params__").unlink()
    with pytest.raises(ConversionError, match="__model__ without __params__"):
        find_paddle_files(tmp_path)


def test_serving_conf_names_and_shapes(tmp_path: Path) -> None:
    feeds, fetches = read_serving_conf(_serving(tmp_path) / "serving_server_conf.prototxt")
    assert [(f.name, f.alias, f.shape) for f in feeds] == [("x", "image", [3, 112, 112])]
    assert [(f.name, f.alias, f.shape) for f in fetches] == [("fc.tmp_1", "emb", [128])]


def test_serving_conf_alias_defaults_to_name(tmp_path: Path) -> None:
    path = tmp_path / "c.prototxt"
    path.write_text('feed_var {\n  name: "x"\n  shape: 3\n}\nfetch_var {\n  name: "y"\n}\n')
    feeds, fetches = read_serving_conf(path)
    assert (feeds[0].alias, fetches[0].alias, fetches[0].shape) == ("x", "y", [])


def test_serving_conf_without_fetch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.prototxt"
    path.write_text('feed_var {\n  name: "x"\n}\n')
    with pytest.raises(ConversionError, match="expected feed_var and fetch_var"):
        read_serving_conf(path)
