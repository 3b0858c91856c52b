"""The web dashboard at `/ui/`: the files Vite built (`SBX_UI_DIR`), and `index.html` for every
other path under `/ui/` so that the dashboard's own routes (`/ui/sandboxes/<id>`) load it.

Built assets have content hashes in their names and are cached for good; `index.html` is sent
fresh each time, with a new style nonce in its placeholder and in the policy (`headers.py`).
When the files are missing, `/ui/` answers 503 with a page that says how to build them.
"""

from __future__ import annotations

import html
import logging
import mimetypes
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from sbx_api.config import ApiSettings
from sbx_api.webui.headers import dashboard_policy, new_nonce, security_headers

logger = logging.getLogger(__name__)


def _source_dist() -> Path:
    """clients/web/dist of the source checkout the API runs from (services/api/src/sbx_api/
    webui/ is five levels below the repository root); elsewhere a path that does not exist."""
    here = Path(__file__).resolve()
    root = here.parents[5] if len(here.parents) > 5 else here.parent
    return root / "clients" / "web" / "dist"


SOURCE_DIST = _source_dist()
NONCE_PLACEHOLDER = "__SBX_STYLE_NONCE__"
IMMUTABLE = "public, max-age=31536000, immutable"
# Types the platform's mimetypes table may lack; with nosniff a wrong type would break the file.
_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
    ".json": "application/json",
    ".wasm": "application/wasm",
}


def ui_directory(settings: ApiSettings) -> Path:
    return (settings.ui_dir or SOURCE_DIST).resolve()


def _media_type(path: Path) -> str:
    return _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _page(request: Request, status: int, title: str, body: str) -> HTMLResponse:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body><main><h1>{html.escape(title)}</h1>{body}"
        "</main></body></html>"
    )
    headers = {**security_headers(dashboard_policy(request, None)), "Cache-Control": "no-store"}
    return HTMLResponse(document, status_code=status, headers=headers)


def not_built(request: Request, root: Path) -> HTMLResponse:
    return _page(
        request,
        503,
        "The web dashboard is not built",
        f"<p>The API serves the dashboard from <code>{html.escape(str(root))}</code>, which has no "
        "<code>index.html</code>.</p>"
        "<p>Build it with <code>make run</code> (it builds the dashboard when it is missing or stale; "
        "it needs Node.js 20.19+ and npm), or by hand: <code>cd clients/typescript &amp;&amp; npm ci</code>, "
        "then <code>cd clients/web &amp;&amp; npm ci &amp;&amp; npm run build</code>. Set "
        "<code>SBX_UI_DIR</code> to serve a build from elsewhere.</p>"
        '<p>The API itself works: its documentation is at <a href="/docs">/docs</a>.</p>',
    )


def _index(request: Request, index: Path) -> Response:
    nonce = new_nonce()
    text = index.read_text(encoding="utf-8").replace(NONCE_PLACEHOLDER, nonce)
    headers = {**security_headers(dashboard_policy(request, nonce)), "Cache-Control": "no-cache"}
    return HTMLResponse(text, headers=headers)


def _is_file_request(path: str) -> bool:
    """Whether a path names a built file (assets, or a name with an extension) rather than a
    route of the dashboard: a missing file is a 404, not the dashboard. A path climbing out
    with `..` is never a route either."""
    parts = path.split("/")
    return path.startswith("assets/") or "." in parts[-1] or ".." in parts


def install(app: FastAPI, settings: ApiSettings) -> None:
    async def redirect(request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/ui/", status_code=308)

    async def serve(request: Request) -> Response:
        path: str = request.path_params.get("path", "")
        root = ui_directory(settings)
        index = root / "index.html"
        try:
            if not index.is_file():
                return not_built(request, root)
            if path and path != "index.html":
                candidate = (root / path).resolve()
                if candidate.is_relative_to(root) and candidate.is_file():
                    cache = IMMUTABLE if path.startswith("assets/") else "no-cache"
                    headers = {**security_headers(dashboard_policy(request, None)), "Cache-Control": cache}
                    return FileResponse(candidate, media_type=_media_type(candidate), headers=headers)
                if _is_file_request(path):
                    return _page(request, 404, "Not found", "<p>The dashboard has no such file.</p>")
            return _index(request, index)
        except OSError:
            # Files removed or rebuilt while being read: the next request finds the new build.
            logger.warning("web dashboard files unreadable", exc_info=True)
            return not_built(request, root)

    # Pages and static files, not the API: left out of the OpenAPI document on purpose.
    app.add_api_route("/ui", redirect, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/ui/", serve, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/ui/{path:path}", serve, methods=["GET", "HEAD"], include_in_schema=False)
