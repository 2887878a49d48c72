"""Gallery operations against bad input (issue 22 items 3, 7, 8): over HTTP in process, real SQLite."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.edges.conftest import ADMIN, DIM, App, make_app

H = {"x-api-key": ADMIN}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[App]:
    a = make_app(tmp_path)
    yield a
    a.gallery.close()


def nested(depth: int) -> dict:
    doc: dict = {}
    for _ in range(depth - 1):
        doc = {"a": doc}
    return doc


def test_deep_metadata_is_refused_before_it_is_stored(api: App) -> None:
    r = api.client.post("/v1/subjects", json={"id": "deep", "name": "D", "metadata": nested(300)}, headers=H)
    assert r.status_code == 400, r.text  # the JSON limit (32) refuses it before any parsing
    r = api.client.post("/v1/subjects", json={"id": "d9", "name": "D", "metadata": nested(9)}, headers=H)
    assert r.status_code == 400 and "metadata: nested 9 deep" in r.text, r.text
    big = {"k": "x" * 70_000}
    r = api.client.post("/v1/subjects", json={"id": "big", "name": "B", "metadata": big}, headers=H)
    assert r.status_code == 400 and "metadata" in r.text
    assert api.client.get("/v1/subjects", headers=H).json()["total"] == 0
    r = api.client.post("/v1/subjects", json={"id": "ok", "name": "O", "metadata": nested(8)}, headers=H)
    assert r.status_code == 201, r.text
    r = api.client.patch("/v1/subjects/ok", json={"metadata": nested(9)}, headers=H)
    assert r.status_code == 400


def test_a_bad_stored_record_does_not_break_reads(api: App, tmp_path: Path) -> None:
    """A record stored before the limits (300 deep) or corrupt: listed with empty metadata."""
    for sid in ("a", "b", "c"):
        assert api.client.post("/v1/subjects", json={"id": sid, "name": sid}, headers=H).status_code == 201
    db = sqlite3.connect(tmp_path / "g.db")
    db.execute("UPDATE subjects SET metadata = ? WHERE id = 'a'", (json.dumps(nested(300)),))
    db.execute("UPDATE subjects SET metadata = ? WHERE id = 'b'", ("[" * 5000,))
    db.commit()
    db.close()
    r = api.client.get("/v1/subjects", headers=H)
    assert r.status_code == 200, r.text
    assert [s["metadata"] for s in r.json()["subjects"]] == [{}, {}, {}]
    for sid in ("a", "b"):
        r = api.client.get(f"/v1/subjects/{sid}", headers=H)
        assert r.status_code == 200 and r.json()["metadata"] == {}, r.text


@pytest.mark.parametrize("fid", ["%C2%B2", "%D9%A1", "1" * 30, "-1", "1e3", "%20"])
def test_face_ids_are_ascii_digits_within_int64(api: App, fid: str) -> None:
    for method in ("GET", "DELETE"):
        r = api.client.request(method, f"/v1/faces/{fid}", headers=H)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input", (fid, r.text)
    assert api.client.get("/v1/faces/1", headers=H).status_code == 404


def test_identify_embeddings_must_have_the_model_dimension(api: App) -> None:
    good = [1.0] * DIM
    for embs in ([good, good[:-1]], [good[:-1]], [[*good, 1.0]], [good, "x"], [[True] * DIM, ["1"] * DIM]):
        r = api.client.post("/v1/identify/embeddings", json={"embeddings": embs}, headers=H)
        assert r.status_code == 400, (embs, r.text)
    r = api.client.post("/v1/identify/embeddings", json={"embeddings": [good, good]}, headers=H)
    assert r.status_code == 200 and len(r.json()["results"]) == 2, r.text
