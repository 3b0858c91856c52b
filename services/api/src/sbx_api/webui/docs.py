"""The API's documentation pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), with their assets
served by the API itself (from the `fastapi-offline` package) instead of FastAPI's default CDN,
so they work on a machine without internet, under a Content-Security-Policy that allows no
other host."""

from __future__ import annotations

import html
from importlib.resources import files
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from sbx_api.webui.headers import DOCS_POLICY, REDOC_POLICY, security_headers

ASSETS_PATH = "/docs/assets"
VENDOR = Path(str(files(fastapi_offline) / "static"))
OWN = Path(__file__).resolve().parent
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (VENDOR / "swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": (VENDOR / "swagger-ui.css", "text/css"),
    "redoc.standalone.js": (VENDOR / "redoc.standalone.js", "text/javascript"),
    "favicon.png": (VENDOR / "favicon.png", "image/png"),
    "swagger-init.js": (OWN / "swagger-init.js", "text/javascript"),
}
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def _prefix(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


def swagger_page(title: str, prefix: str) -> str:
    assets = f"{prefix}{ASSETS_PATH}"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} - Swagger UI</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{prefix}/openapi.json"
     data-oauth2-redirect-url="{prefix}{OAUTH2_REDIRECT}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-init.js"></script>
</body>
</html>
"""


def redoc_page(title: str, prefix: str) -> str:
    assets = f"{prefix}{ASSETS_PATH}"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} - ReDoc</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png">
</head>
<body>
<redoc spec-url="{prefix}/openapi.json"></redoc>
<script src="{assets}/redoc.standalone.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    async def swagger(request: Request) -> Response:
        return HTMLResponse(swagger_page(app.title, _prefix(request)), headers=security_headers(DOCS_POLICY))

    async def redoc(request: Request) -> Response:
        return HTMLResponse(redoc_page(app.title, _prefix(request)), headers=security_headers(REDOC_POLICY))

    async def oauth2_redirect() -> Response:
        return get_swagger_ui_oauth2_redirect_html()

    async def asset(name: str) -> Response:
        found = ASSETS.get(name)
        if found is None:
            return Response("Not found", status_code=404, media_type="text/plain")
        path, media_type = found
        headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
        return FileResponse(path, media_type=media_type, headers=headers)

    # Pages and their assets, not the API: left out of the OpenAPI document, as FastAPI's own are.
    app.add_api_route("/docs", swagger, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route(OAUTH2_REDIRECT, oauth2_redirect, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route(ASSETS_PATH + "/{name}", asset, methods=["GET", "HEAD"], include_in_schema=False)
