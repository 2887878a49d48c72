"""Collections on a real server with the real models: made with the CLI, filled and searched with the
client over HTTP and gRPC with each collection's own key, isolated from each other and from the
default gallery, deleted with everything in it; the default routes work as they always did."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from facepipe.cli import app
from facepipe.client import Client
from facepipe.errors import Forbidden, NotFound, Unauthorized
from tests.integration.conftest import Running, start_server, stop_server
from tests.integration.test_gallery_api import ADMIN, AUTH, people

runner = CliRunner()


@pytest.fixture(scope="module")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_server(models_dir, tmp_path_factory.mktemp("collections"), AUTH)
    yield running
    stop_server(running)


def cli_create(server: Running, name: str) -> dict[str, str]:
    made = runner.invoke(
        app, ["gallery", "collections", "create", name, "--url", server.url, "--api-key", ADMIN, "--json"]
    )
    assert made.exit_code == 0, made.output
    return dict(json.loads(made.stdout)["keys"])


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_two_collections_on_one_server_are_isolated(server: Running, lfw_dir: Path, transport: str) -> None:
    (ann, ann_files), (bob, bob_files) = list(people(lfw_dir, 2, 2).items())
    a_name, b_name = f"a-{transport}", f"b-{transport}"
    a, b = cli_create(server, a_name), cli_create(server, b_name)
    grpc = server.grpc if transport == "grpc" else None
    with (
        Client(server.url, a["admin"], grpc=grpc, collection=a_name) as ca,
        Client(server.url, b["admin"], grpc=grpc, collection=b_name) as cb,
        Client(server.url, a["admin"], grpc=grpc, collection=b_name) as a_on_b,
        Client(server.url, ADMIN, grpc=grpc) as default,
    ):
        for c, who, paths in ((ca, ann, ann_files), (cb, bob, bob_files)):
            c.create_subject(who, id="person")  # the same id in both collections
            assert len(c.enrol("person", paths[:1]).faces) == 1
        found_a = ca.identify(ann_files[1:])[0].faces[0].matches
        assert found_a and found_a[0].name == ann and found_a[0].match
        found_b = cb.identify(ann_files[1:])[0].faces[0].matches  # ann is not in b
        assert [m.name for m in found_b] == [bob] and not found_b[0].match  # only b's face
        with pytest.raises(Forbidden):
            a_on_b.subjects()
        with pytest.raises(Forbidden):
            a_on_b.create_subject("eve")
        with pytest.raises(Forbidden):
            a_on_b.identify(ann_files[1:])
        with pytest.raises(NotFound):
            default.subject("person")  # not in the default collection
        assert ca.subject("person").name == ann and cb.subject("person").name == bob
        assert default.collection(a_name).faces == 1
        assert default.delete_collection(a_name) == (1, 1)
        with pytest.raises(Unauthorized):
            ca.subjects()  # its keys went with it
        assert cb.subject("person").faces == 1


def test_the_cli_lists_shows_and_deletes_and_default_routes_are_unchanged(
    server: Running, lfw_dir: Path
) -> None:
    keys = cli_create(server, "cli")
    args = ["--url", server.url, "--api-key", ADMIN]
    listed = runner.invoke(app, ["gallery", "collections", "list", "--json", *args])
    assert "cli" in [c["name"] for c in json.loads(listed.stdout)], listed.output
    shown = runner.invoke(app, ["gallery", "collections", "set-threshold", "cli", "0.25", *args])
    assert shown.exit_code == 0 and "0.25" in shown.stdout
    (who, paths), *_ = people(lfw_dir, 1, 2).items()
    key = ["--url", server.url, "--api-key", keys["admin"], "--collection", "cli"]
    r = httpx.post(
        server.url + "/v1/collections/cli/subjects",
        json={"id": "p", "name": who},
        headers={"x-api-key": keys["admin"]},
    )
    assert r.status_code == 201, r.text
    with Client(server.url, keys["admin"], collection="cli") as c:
        c.enrol("p", paths[:1])
    found = runner.invoke(app, ["identify", str(paths[1]), "--json", *key])
    assert found.exit_code == 0, found.output
    result = json.loads(found.stdout)[0]["faces"][0]["matches"][0]
    assert result["subject"] == "p" and result["match"]
    assert runner.invoke(app, ["gallery", "list", "--json", *key]).stdout.count('"id"') == 1
    gone = runner.invoke(app, ["gallery", "collections", "delete", "cli", *args])
    assert gone.exit_code == 0 and "1 subjects, 1 faces" in gone.stdout
    r = httpx.get(server.url + "/v1/subjects", headers={"x-api-key": ADMIN})  # the default gallery
    assert r.status_code == 200 and r.json()["offset"] == 0
