"""The web UI (``/ui``): server-rendered page shells plus plain JS that calls the server's own API.

Each page is ``static/ui/page.html`` (header, navigation, API key form) around the page's own fragment
``static/ui/<page>.html`` and script ``static/ui/<page>.js``; every action in the browser goes to the
real routes (``/v1``, ``/v2/repository``, ``/metrics``) with the key the user typed, kept in the
browser's session storage. Static files are read once when the app is built, never per request.
Two small JSON routes serve only the UI: what a key may do (to hide write actions from read-only keys;
the API refuses them anyway) and the A/B weights in force.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from facepipe.api.auth import HEADER
from facepipe.edges.http import JsonResponse
from facepipe.edges.observe import Edge
from facepipe.edges.state import ServerState
from facepipe.errors import FacepipeError, NotFound
from facepipe.models.versions import Versions

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static" / "ui"
PAGES = {
    "gallery": "Gallery",
    "identify": "Who is this",
    "verify": "Verify",
    "models": "Models",
    "live": "Live",
}
MEDIA = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
NO_STORE = {"cache-control": "no-cache"}


@dataclass(slots=True)
class Asset:
    data: bytes
    media_type: str


def load_assets(folder: Path = STATIC) -> tuple[dict[str, str], dict[str, Asset]]:
    """The HTML templates (``page.html`` and one fragment per page) and the files served as they are."""
    templates = {p.stem: p.read_text("utf-8") for p in folder.glob("*.html")}
    missing = {"page", *PAGES} - templates.keys()
    if missing:
        raise RuntimeError(f"web UI files missing from {folder}: {sorted(missing)}")
    assets = {p.name: Asset(p.read_bytes(), MEDIA[p.suffix]) for p in folder.iterdir() if p.suffix in MEDIA}
    return templates, assets


def render(templates: dict[str, str], page: str) -> str:
    """The page shell with the navigation (the current page marked) and the page's fragment."""
    nav = "".join(
        f'<a href="/ui/{name}"{" aria-current=page" if name == page else ""}>{html.escape(title)}</a>'
        for name, title in PAGES.items()
    )
    values = {"title": html.escape(PAGES[page]), "page": page, "nav": nav, "body": templates[page]}
    out = templates["page"]
    for key, value in values.items():
        out = out.replace("{{" + key + "}}", value)
    return out


def ui_error(err: FacepipeError, _: Request) -> Response:
    return PlainTextResponse(err.message, status_code=err.http_status)


def weights(state: ServerState) -> dict[str, dict[str, Any]]:
    """Every served name: its loaded versions and the A/B weights in force (empty: the newest version
    takes all)."""
    served: list[tuple[str, Versions[Any]]] = [*state.models.items()]
    served += [(name, svc.variants) for name, svc in state.seed.items()]
    return {name: {"versions": v.names(), "weights": v.weights} for name, v in served}


def ui_routes(state: ServerState, edge: Edge) -> list[Route]:
    templates, assets = load_assets()
    pages = {name: render(templates, name) for name in PAGES}

    async def root(_: Request) -> Response:
        return RedirectResponse("/ui", status_code=307)

    async def home(_: Request) -> Response:
        return RedirectResponse("/ui/gallery", status_code=307)

    async def page(request: Request) -> Response:
        body = pages.get(request.path_params["page"])
        if body is None:
            raise NotFound(f"no page {request.path_params['page']!r}; pages: {sorted(PAGES)}")
        return HTMLResponse(body, headers=NO_STORE)

    async def static(request: Request) -> Response:
        asset = assets.get(request.path_params["name"])
        if asset is None:
            raise NotFound(f"no file {request.path_params['name']!r}")
        return Response(asset.data, media_type=asset.media_type, headers=NO_STORE)

    async def role(request: Request) -> Response:
        return JsonResponse({"role": state.key_role(request.headers.get(HEADER))})

    async def ab_weights(_: Request) -> Response:
        return JsonResponse(weights(state))

    return [
        edge.route("/", root, "ui:page", ui_error),
        edge.route("/ui", home, "ui:page", ui_error),
        edge.route("/ui/api/role", role, "ui:api", ui_error),
        edge.route("/ui/api/weights", ab_weights, "ui:api", ui_error),
        edge.route("/ui/static/{name}", static, "ui:static", ui_error),
        edge.route("/ui/{page}", page, "ui:page", ui_error),
    ]
