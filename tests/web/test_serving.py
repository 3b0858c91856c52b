"""How the API serves the dashboard and its documentation pages, checked in process (no
platform needed: these routes touch neither the database nor NATS): the security headers, the
client-route fallback, the page shown when the dashboard is not built, and /docs without any
other host."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sbx_api.app import create_app
from sbx_api.config import ApiSettings

INDEX = """<!doctype html><html><head>
<meta name="sbx-style-nonce" content="__SBX_STYLE_NONCE__" />
<script type="module" crossorigin src="/ui/assets/index-abc123.js"></script>
<link rel="stylesheet" href="/ui/assets/index-abc123.css"></head>
<body><div id="root"></div></body></html>"""


def built(root: Path) -> Path:
    """A stand-in for Vite's output: index.html and two hashed assets."""
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "assets" / "index-abc123.js").write_text("console.log('dashboard');")
    (root / "assets" / "index-abc123.css").write_text("body { margin: 0 }")
    (root / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    return root


def client_for(ui_dir: Path) -> httpx.AsyncClient:
    settings = ApiSettings(
        jwt_secret="x" * 40,
        secrets_master_key=base64.b64encode(os.urandom(32)).decode(),
        ui_dir=ui_dir,
    )
    transport = httpx.ASGITransport(app=create_app(settings))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3001")


@pytest.fixture
async def ui(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(built(tmp_path / "dist")) as http:
        yield http


def directives(policy: str) -> dict[str, str]:
    return {part.strip().split(" ", 1)[0]: part.strip() for part in policy.split(";") if part.strip()}


async def test_the_dashboard_is_sent_with_a_strict_policy(ui: httpx.AsyncClient) -> None:
    response = await ui.get("/ui/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = directives(response.headers["content-security-policy"])
    assert policy["default-src"] == "default-src 'self'"
    assert policy["script-src"] == "script-src 'self'"
    assert policy["frame-ancestors"] == "frame-ancestors 'none'"
    assert policy["object-src"] == "object-src 'none'"
    assert "'self'" in policy["connect-src"]
    assert "ws://127.0.0.1:3001" in policy["connect-src"]
    assert "unsafe" not in response.headers["content-security-policy"]
    # Style elements need this response's nonce, which the page carries for the dashboard.
    nonce = re.search(r"'nonce-([A-Za-z0-9_-]+)'", policy["style-src"])
    assert nonce is not None
    assert f'content="{nonce.group(1)}"' in response.text
    again = await ui.get("/ui/")
    assert nonce.group(1) not in again.headers["content-security-policy"]


async def test_client_routes_load_the_dashboard(ui: httpx.AsyncClient) -> None:
    for path in ("/ui/sandboxes/6f1c0d2e-8a4b-4c1d-9e7f-0a1b2c3d4e5f", "/ui/environments", "/ui/login"):
        response = await ui.get(path)
        assert response.status_code == 200, path
        assert '<div id="root">' in response.text
        assert "content-security-policy" in response.headers
    redirect = await ui.get("/ui")
    assert redirect.status_code == 308
    assert redirect.headers["location"] == "/ui/"


async def test_built_files_are_served_with_their_types_and_cached(ui: httpx.AsyncClient) -> None:
    script = await ui.get("/ui/assets/index-abc123.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "immutable" in script.headers["cache-control"]
    assert script.headers["x-content-type-options"] == "nosniff"
    style = await ui.get("/ui/assets/index-abc123.css")
    assert style.headers["content-type"].startswith("text/css")
    icon = await ui.get("/ui/favicon.svg")
    assert icon.headers["content-type"] == "image/svg+xml"
    head = await ui.head("/ui/assets/index-abc123.js")
    assert head.status_code == 200


async def test_missing_files_and_paths_outside_the_build_are_404(ui: httpx.AsyncClient) -> None:
    for path in ("/ui/assets/gone-123.js", "/ui/robots.txt", "/ui/..%2f..%2f..%2fetc%2fpasswd"):
        response = await ui.get(path)
        assert response.status_code == 404, path
        assert "content-security-policy" in response.headers
        assert "root:" not in response.text


async def test_a_missing_build_says_how_to_make_it(tmp_path: Path) -> None:
    async with client_for(tmp_path / "nothing-here") as http:
        for path in ("/ui/", "/ui/sandboxes/x"):
            response = await http.get(path)
            assert response.status_code == 503
            assert response.headers["content-type"].startswith("text/html")
            assert "make run" in response.text
            assert "npm run build" in response.text
            assert "SBX_UI_DIR" in response.text
            assert "content-security-policy" in response.headers


def references(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_documentation_pages_use_only_the_apis_own_assets(ui: httpx.AsyncClient, path: str) -> None:
    page = await ui.get(path)
    assert page.status_code == 200
    assert "//" not in "".join(references(page.text)), references(page.text)
    assert "cdn" not in page.text.lower()
    policy = directives(page.headers["content-security-policy"])
    assert policy["script-src"] == "script-src 'self'"
    assert policy["frame-ancestors"] == "frame-ancestors 'none'"
    assert references(page.text), "the page names no asset"
    for url in references(page.text):
        asset = await ui.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url
    assert 'data-openapi-url="/openapi.json"' in page.text or 'spec-url="/openapi.json"' in page.text


async def test_pages_stay_out_of_the_openapi_document(ui: httpx.AsyncClient) -> None:
    document = (await ui.get("/openapi.json")).json()
    assert not [p for p in document["paths"] if p.startswith(("/ui", "/docs", "/redoc"))]
