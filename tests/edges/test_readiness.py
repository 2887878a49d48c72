"""A gallery that cannot write answers 503 (not 500 ``OperationalError``) and turns readiness false
until a write succeeds again (issue 22 item 8). SQLite's ``query_only`` makes the real store refuse
writes exactly as a read-only file does ("attempt to write a readonly database")."""

from __future__ import annotations

from pathlib import Path

from tests.edges.conftest import ADMIN, make_app

H = {"x-api-key": ADMIN}


def test_a_read_only_store_is_503_and_not_ready_until_it_writes_again(tmp_path: Path) -> None:
    api = make_app(tmp_path)
    api.state.ready = True
    api.state.checks.append(api.gallery.write_problem)  # as server/app.py wires it
    assert api.client.get("/readyz").json() == {"ready": True, "in_flight": 0, "problems": []}
    api.gallery.store._writer.execute("PRAGMA query_only = ON")
    r = api.client.post("/v1/subjects", json={"id": "a", "name": "A"}, headers=H)
    assert r.status_code == 503 and "cannot be written" in r.json()["error"]["message"], r.text
    ready = api.client.get("/readyz")
    assert ready.status_code == 503 and "readonly" in ready.json()["problems"][0], ready.text
    assert api.client.get("/v2/health/ready").status_code == 503
    assert api.client.get("/v1/subjects", headers=H).status_code == 200  # reads still answer
    api.gallery.store._writer.execute("PRAGMA query_only = OFF")
    r = api.client.post("/v1/subjects", json={"id": "a", "name": "A"}, headers=H)
    assert r.status_code == 201 and api.client.get("/readyz").status_code == 200
    api.gallery.close()


def test_a_data_directory_that_is_not_writable_is_not_ready(tmp_path: Path) -> None:
    api = make_app(tmp_path)
    api.state.ready = True
    api.state.checks.append(api.gallery.write_problem)
    api.gallery.store.path = Path("/proc/1/g.db")  # a directory no one may create files in
    r = api.client.get("/readyz")
    assert r.status_code == 503 and "not writable" in r.json()["problems"][0], r.text
    api.gallery.close()
