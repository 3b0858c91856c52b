"""Preview links in a real browser (Debian's Chromium, driven by Playwright): a page with a
stylesheet, a script, a `fetch` of a relative URL and a WebSocket of its own, opened from the
link alone, on the API's origin and on a preview host of its own (`*.localhost`)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, async_playwright
from sbx_devstack.servers import free_port

from tests.ports.conftest import WS_PORT
from tests.support.api import User, create_environment, data_of
from tests.support.platform import Platform
from tests.support.sandboxes import create_sandbox
from tests.support.waiting import wait_for

CHROMIUM = os.environ.get("SBX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

APP_HTML = """<!doctype html>
<html><head><link rel="stylesheet" href="style.css"></head>
<body><div id="data">loading</div><div id="ws">waiting</div><div id="root">-</div>
<script src="app.js"></script></body></html>
"""
# Relative URLs only, except the root-relative one, which only a preview host can serve.
APP_JS = """
const show = (id, text) => { document.getElementById(id).textContent = text.trim(); };
fetch("data.txt").then((r) => r.text()).then((t) => show("data", t));
fetch("/data.txt").then((r) => (r.ok ? r.text() : "missing")).then((t) => show("root", t));
const url = new URL("live", location.href);
url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
const socket = new WebSocket(url);
socket.onopen = () => socket.send("ping-from-page");
socket.onmessage = (event) => { document.getElementById("ws").textContent = event.data; };
"""
APP_CSS = "#data { color: rgb(1, 2, 3); }\n"
SCRIPT = (
    "mkdir -p /tmp/app && printf '%s' \"$APP_HTML\" > /tmp/app/index.html"
    " && printf '%s' \"$APP_JS\" > /tmp/app/app.js && printf '%s' \"$APP_CSS\" > /tmp/app/style.css"
    f" && echo data-ok > /tmp/app/data.txt && exec wsecho :{WS_PORT} /tmp/app"
)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's chromium (or SBX_CHROMIUM)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
async def app_sandbox(api: httpx.AsyncClient, owner: User, wsecho_image: str) -> dict[str, Any]:
    env = await create_environment(
        api,
        owner,
        wsecho_image,
        cpu=0.5,
        memory=64,
        env={"APP_HTML": APP_HTML, "APP_JS": APP_JS, "APP_CSS": APP_CSS},
        command=["sh", "-c", SCRIPT],
    )
    sandbox = await create_sandbox(api, owner, env["id"], "?wait=true&timeout=60")

    async def serving() -> bool:
        path = f"/sandboxes/{sandbox['id']}/ports/{WS_PORT}/data.txt"
        return (await api.get(path, headers=owner.headers)).status_code == 200

    await wait_for(serving, timeout=30, what="the app answers")
    return sandbox


async def open_app(browser: Browser, url: str) -> dict[str, str]:
    """Open the link in a fresh browser context (no cookie, no credential) and read the page."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(url)
        await page.wait_for_function(
            "document.getElementById('ws').textContent !== 'waiting'"
            " && document.getElementById('data').textContent !== 'loading'"
            " && document.getElementById('root').textContent !== '-'",
            timeout=30_000,
        )
        return {
            "location": page.url,
            "data": await page.text_content("#data") or "",
            "ws": await page.text_content("#ws") or "",
            "root": await page.text_content("#root") or "",
            "color": await page.eval_on_selector("#data", "e => getComputedStyle(e).color"),
            "cookie": await page.evaluate("document.cookie"),
        }
    finally:
        await context.close()


async def test_a_page_with_assets_and_its_own_websocket_works_from_the_link(
    browser: Browser, api: httpx.AsyncClient, owner: User, app_sandbox: dict[str, Any]
) -> None:
    answer = await api.post(
        f"/sandboxes/{app_sandbox['id']}/ports/{WS_PORT}/preview-url", headers=owner.headers
    )
    link = data_of(answer, 201)["url"]
    seen = await open_app(browser, link)
    assert seen["location"] == link.split("?")[0]  # the token left the address bar
    assert seen["data"] == "data-ok"
    assert seen["color"] == "rgb(1, 2, 3)"
    assert seen["ws"] == "ping-from-page"
    assert seen["cookie"] == ""  # HttpOnly: no script of the page reads the preview cookie
    assert seen["root"] == "missing"  # root-relative URLs leave the prefix on the API's origin


async def test_on_a_preview_host_root_relative_urls_work_too(
    browser: Browser, platform: Platform, owner: User, app_sandbox: dict[str, Any], tmp_path: Path
) -> None:
    port = free_port()
    template = f"http://{{port}}-{{id}}.localhost:{port}"
    hosted = Platform(
        base_env={**platform.base_env, "SBX_PREVIEW_URL": template}, log_dir=tmp_path, api_port=port
    )
    await asyncio.to_thread(hosted.start_service, "api")
    try:
        async with hosted.client() as http:
            answer = await http.post(
                f"/sandboxes/{app_sandbox['id']}/ports/{WS_PORT}/preview-url", headers=owner.headers
            )
            link = data_of(answer, 201)["url"]
        assert link.startswith(f"http://{WS_PORT}-{app_sandbox['id']}.localhost:{port}/?sbx_preview=")
        seen = await open_app(browser, link)
        assert seen["location"] == f"http://{WS_PORT}-{app_sandbox['id']}.localhost:{port}/"
        assert (seen["data"], seen["ws"], seen["root"]) == ("data-ok", "ping-from-page", "data-ok")
        assert seen["cookie"] == ""
    finally:
        hosted.stop_all()
