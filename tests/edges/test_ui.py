"""The web UI's routes on a bare server state: redirects, page shells, static files, key roles."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.applications import Starlette

from facepipe.edges.observe import Edge
from facepipe.edges.state import ServerState
from facepipe.edges.ui import PAGES, load_assets, render, ui_routes


class Client:
    """GET requests straight into the ASGI app (no server, no redirects followed)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def get(self, path: str, **kw: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ui") as c:
                return await c.get(path, **kw)

        return asyncio.run(call())


def client() -> tuple[Client, ServerState]:
    state = ServerState(seed={}, models={})
    state.key_role = lambda key: {"a" * 20: "admin", "r" * 20: "read"}.get(key or "", "none")
    return Client(Starlette(routes=ui_routes(state, Edge(state.metrics)))), state


def test_root_redirects_to_the_ui_and_the_ui_to_the_gallery() -> None:
    c, _ = client()
    for path, to in (("/", "/ui"), ("/ui", "/ui/gallery")):
        r = c.get(path)
        assert r.status_code == 307 and r.headers["location"] == to


def test_every_page_is_a_shell_with_its_fragment_script_and_navigation() -> None:
    c, _ = client()
    templates, _ = load_assets()
    for page in PAGES:
        r = c.get(f"/ui/{page}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert f'<script src="/ui/static/{page}.js">' in r.text and "{{" not in r.text
        assert templates[page].strip() in r.text
        assert r.text.count("aria-current=page") == 1 and f'href="/ui/{page}" aria-current' in r.text
        assert c.get(f"/ui/static/{page}.js").headers["content-type"].startswith("text/javascript")
    assert c.get("/ui/static/ui.css").headers["content-type"].startswith("text/css")


def test_unknown_pages_and_files_are_404_not_files_outside_the_folder() -> None:
    c, _ = client()
    assert c.get("/ui/nope").status_code == 404
    for path in ("/ui/static/nope.js", "/ui/static/page.html", "/ui/static/..%2F..%2Fui.py"):
        assert c.get(path).status_code == 404


def test_role_of_the_key_sent() -> None:
    c, _ = client()
    assert c.get("/ui/api/role", headers={"x-api-key": "a" * 20}).json() == {"role": "admin"}
    assert c.get("/ui/api/role", headers={"x-api-key": "r" * 20}).json() == {"role": "read"}
    assert c.get("/ui/api/role").json() == {"role": "none"}


def test_ui_requests_are_counted_under_ui_labels() -> None:
    c, state = client()
    c.get("/ui/gallery")
    c.get("/ui/nope")
    text = state.metrics.render().decode()
    assert 'facepipe_requests_total{endpoint="ui:page",status="ok"} 1.0' in text
    assert 'facepipe_requests_total{endpoint="ui:page",status="not_found"} 1.0' in text


def test_render_escapes_titles() -> None:
    templates = {"page": "<title>{{title}}</title>{{nav}}{{body}}", **dict.fromkeys(PAGES, "<p>x</p>")}
    out = render(templates, "identify")
    assert out.startswith("<title>Who is this</title>") and out.endswith("<p>x</p>")
