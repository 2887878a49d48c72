"""``GET /openapi.json`` (the document of every public route, api/openapi.py) and Swagger UI at
``/docs``, served from the pinned ``swagger-ui-dist`` files vendored in ``edges/static/swagger/``
(see its VERSION file: npm version, tarball sha256 and each file's sha256). Nothing is fetched from
the network: the page works on a machine with no internet access."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from facepipe.api import openapi
from facepipe.edges.http import dumps
from facepipe.edges.observe import Edge
from facepipe.edges.v1 import v1_error
from facepipe.errors import NotFound

SWAGGER = Path(__file__).parent / "static" / "swagger"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "LICENSE": "text/plain",
    "NOTICE": "text/plain",
    "swagger-ui-bundle.js.LICENSE.txt": "text/plain",
    "VERSION": "text/plain",
}
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>facepipe API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  persistAuthorization: true});
</script>
</body>
</html>
"""


def docs_routes(edge: Edge) -> list[Route]:
    document = dumps(openapi.document())  # built once: it does not change while the server runs

    async def openapi_json(_: Request) -> Response:
        return Response(document, media_type="application/json")

    async def page(_: Request) -> Response:
        return HTMLResponse(PAGE)

    async def asset(request: Request) -> Response:
        name = request.path_params["asset"]
        media = ASSETS.get(name)
        if media is None:
            raise NotFound(f"no such file: /docs/{name}")
        return FileResponse(SWAGGER / name, media_type=media, headers={"cache-control": "max-age=86400"})

    return [
        edge.route("/openapi.json", openapi_json, "docs:openapi", v1_error),
        edge.route("/docs", page, "docs:page", v1_error),
        edge.route("/docs/{asset}", asset, "docs:asset", v1_error),
    ]
