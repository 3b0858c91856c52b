"""Preview URLs on the real platform: a browser-like client with no credential follows the link
(cookie, redirect, relative pages, the app's own WebSocket), and links that are tampered with,
expired, for another port, or of a destroyed sandbox are refused."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sbx_api.ports import tokens

from tests.ports.conftest import HTTP_PORT, WS_PORT, start_web_sandbox
from tests.support.api import User, data_of, error_of, signup
from tests.support.platform import Platform, extra_api
from tests.support.sandboxes import lifecycle
from tests.support.sockets import ws_connect


async def preview(
    api: httpx.AsyncClient, owner: User, sandbox_id: str, port: int, **body: Any
) -> dict[str, Any]:
    answer = await api.post(
        f"/sandboxes/{sandbox_id}/ports/{port}/preview-url", json=body, headers=owner.headers
    )
    return dict(data_of(answer, 201))


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["sbx_preview"][0]


def signed(platform: Platform, sandbox_id: str, owner_id: str, port: int, expires_at: int) -> str:
    """A token signed with the platform's key (as the API would), e.g. one already expired."""
    key = tokens.preview_key("", platform.base_env["SBX_JWT_SECRET"])
    claims = tokens.PreviewToken(uuid.UUID(sandbox_id), uuid.UUID(owner_id), port, expires_at)
    return tokens.sign(claims, key)


async def test_a_browser_opens_the_link_with_no_other_credential(
    api: httpx.AsyncClient, platform: Platform, owner: User, web_sandbox: dict[str, Any]
) -> None:
    link = await preview(api, owner, web_sandbox["id"], HTTP_PORT)
    assert link["url"].startswith(
        f"{platform.api_url}/sandboxes/{web_sandbox['id']}/ports/{HTTP_PORT}/?sbx_preview="
    )
    expires = datetime.fromisoformat(link["expiresAt"].replace("Z", "+00:00"))
    assert abs(expires.timestamp() - (time.time() + 3600)) < 60
    prefix = f"/sandboxes/{web_sandbox['id']}/ports/{HTTP_PORT}"
    async with httpx.AsyncClient(timeout=30) as browser:
        first = await browser.get(link["url"])
        assert first.status_code == 303
        assert first.headers["location"] == f"{prefix}/"
        cookie = first.headers["set-cookie"]
        for attribute in ("HttpOnly", "SameSite=Lax", f"Path={prefix}", "Max-Age="):
            assert attribute in cookie, cookie
        page = await browser.get(f"{platform.api_url}{first.headers['location']}")
        assert page.status_code == 200
        assert page.text == "hello-from-sandbox\n"
        # A relative link of the page, a POST of the app, and its redirect: all on the cookie.
        assert (await browser.get(f"{platform.api_url}{prefix}/sub/")).text == "in-sub\n"
        echoed = await browser.post(f"{platform.api_url}{prefix}/cgi-bin/echo?a=1", content=b"form-data")
        assert echoed.content == b"form-data"
        assert echoed.headers["x-query"] == "a=1"
        # The cookie opens this port only (the browser would not even send it elsewhere).
        other = await browser.get(
            f"{platform.api_url}/sandboxes/{web_sandbox['id']}/ports/{WS_PORT}/",
            headers={"Cookie": f"sbx_preview={token_of(link['url'])}"},
        )
        error_of(other, 401, "UNAUTHORIZED")


async def test_the_apps_own_credentials_pass_and_the_platforms_do_not(
    api: httpx.AsyncClient, platform: Platform, owner: User, web_sandbox: dict[str, Any]
) -> None:
    link = await preview(api, owner, web_sandbox["id"], WS_PORT)
    token = token_of(link["url"])
    prefix = f"{platform.api_url}/sandboxes/{web_sandbox['id']}/ports/{WS_PORT}"
    async with httpx.AsyncClient(timeout=30) as browser:
        # Not a GET: no redirect, the request goes through at once (the token left out).
        answer = await browser.request(
            "DELETE",
            f"{prefix}/headers?sbx_preview={token}&keep=1",
            headers={"Authorization": "Bearer the-apps-own", "Cookie": "app=2"},
        )
        assert answer.status_code == 200
        lines = answer.text.splitlines()
        assert lines[0] == "DELETE /headers?keep=1"
        assert "authorization: Bearer the-apps-own" in lines
        assert "cookie: app=2" in lines
        with_cookie = await browser.get(
            f"{prefix}/headers", headers={"Cookie": f"app=3; sbx_preview={token}"}
        )
        assert "cookie: app=3" in with_cookie.text.splitlines()
        assert token not in with_cookie.text


async def test_the_apps_websocket_works_on_the_preview_cookie(
    api: httpx.AsyncClient, platform: Platform, owner: User, web_sandbox: dict[str, Any]
) -> None:
    link = await preview(api, owner, web_sandbox["id"], WS_PORT)
    url = f"{platform.ws_url}/sandboxes/{web_sandbox['id']}/ports/{WS_PORT}/live"
    async with ws_connect(
        url, additional_headers={"Cookie": f"sbx_preview={token_of(link['url'])}"}
    ) as socket:
        await socket.send("through a preview")
        assert await socket.recv() == "through a preview"


async def test_tampered_expired_and_misplaced_links_are_refused(
    api: httpx.AsyncClient, platform: Platform, owner: User, web_sandbox: dict[str, Any]
) -> None:
    sid = web_sandbox["id"]
    token = token_of((await preview(api, owner, sid, HTTP_PORT))["url"])
    base = f"{platform.api_url}/sandboxes/{sid}/ports/{HTTP_PORT}/"
    version, payload, mac = token.split(".")
    fresh = signed(platform, sid, owner.id, HTTP_PORT, int(time.time()) + 3600)
    tampered = [
        f"{version}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{mac}",
        f"{version}.{payload}.{mac[:-3]}xyz",
        f"v2.{payload}.{mac}",
        "garbage",
        # The MAC's last character with a bit that carries data flipped: other bytes.
        f"{fresh[:-1]}{B64URL[B64URL.index(fresh[-1]) ^ 0b100000]}",
        # The same with its unused low bit flipped: other text, the same bytes.
        f"{version}.{payload}.{mac[:-1]}{B64URL[B64URL.index(mac[-1]) ^ 1]}",
    ]
    expired = signed(platform, sid, owner.id, HTTP_PORT, int(time.time()) - 1)
    other_owner = signed(platform, sid, str(uuid.uuid4()), HTTP_PORT, int(time.time()) + 3600)
    foreign_key = tokens.sign(
        tokens.PreviewToken(uuid.UUID(sid), uuid.UUID(owner.id), HTTP_PORT, int(time.time()) + 3600),
        b"k" * 32,
    )
    async with httpx.AsyncClient(timeout=30) as browser:
        for bad in [*tampered, expired, other_owner, foreign_key]:
            error_of(await browser.get(base, params={"sbx_preview": bad}), 401, "UNAUTHORIZED")
            error_of(await browser.get(base, headers={"Cookie": f"sbx_preview={bad}"}), 401, "UNAUTHORIZED")
        error_of(await browser.get(base), 401, "UNAUTHORIZED")


async def test_a_destroyed_sandboxs_link_stops_working_before_it_expires(
    api: httpx.AsyncClient, owner: User, web_environment: dict[str, Any]
) -> None:
    sandbox = await start_web_sandbox(api, owner, web_environment)
    link = await preview(api, owner, sandbox["id"], HTTP_PORT, expiresInSeconds=604800)
    async with httpx.AsyncClient(timeout=30, follow_redirects=True) as browser:
        assert (await browser.get(link["url"])).text == "hello-from-sandbox\n"
        await lifecycle(api, owner, sandbox["id"], "stop")
        error_of(await browser.get(link["url"]), 409, "NOT_RUNNING")
        await lifecycle(api, owner, sandbox["id"], "destroy")
        error_of(await browser.get(link["url"]), 401, "UNAUTHORIZED")
        cookie_path = urlsplit(link["url"]).path
        error_of(await browser.get(f"{str(api.base_url).rstrip('/')}{cookie_path}"), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("seconds", [59, 604801, "3600", 1.5, None])
async def test_bad_expiries_are_400(
    api: httpx.AsyncClient, owner: User, web_sandbox: dict[str, Any], seconds: object
) -> None:
    answer = await api.post(
        f"/sandboxes/{web_sandbox['id']}/ports/{HTTP_PORT}/preview-url",
        json={"expiresInSeconds": seconds},
        headers=owner.headers,
    )
    error_of(answer, 400, "VALIDATION_ERROR")


async def test_preview_url_needs_the_owner_and_a_good_port(
    api: httpx.AsyncClient, owner: User, web_sandbox: dict[str, Any]
) -> None:
    path = f"/sandboxes/{web_sandbox['id']}/ports/{HTTP_PORT}/preview-url"
    error_of(await api.post(path), 401, "UNAUTHORIZED")
    stranger = await signup(api)
    error_of(await api.post(path, headers=stranger.headers), 404, "NOT_FOUND")
    bad_port = f"/sandboxes/{web_sandbox['id']}/ports/0/preview-url"
    error_of(await api.post(bad_port, headers=owner.headers), 400, "VALIDATION_ERROR")
    link = await preview(api, owner, web_sandbox["id"], HTTP_PORT, expiresInSeconds=60)
    expires = datetime.fromisoformat(link["expiresAt"].replace("Z", "+00:00"))
    assert 0 < expires.timestamp() - datetime.now(UTC).timestamp() <= 61


async def test_public_url_and_preview_hosts(
    platform: Platform, owner: User, web_sandbox: dict[str, Any], tmp_path: Path
) -> None:
    """`SBX_PUBLIC_URL` is the links' base; with `SBX_PREVIEW_URL` each sandbox port has a host of
    its own, whose every path (root-relative ones included) goes to the sandbox."""
    settings = {"SBX_PUBLIC_URL": "https://sbx.example.test/"}
    async with extra_api(platform, tmp_path, **settings) as other:
        link = await preview(other, owner, web_sandbox["id"], HTTP_PORT)
        assert link["url"].startswith(
            f"https://sbx.example.test/sandboxes/{web_sandbox['id']}/ports/{HTTP_PORT}/?"
        )
    template = "http://{port}-{id}.preview.test"
    async with extra_api(platform, tmp_path, SBX_PREVIEW_URL=template) as hosted:
        link = await preview(hosted, owner, web_sandbox["id"], HTTP_PORT)
        host = f"{HTTP_PORT}-{web_sandbox['id']}.preview.test"
        assert link["url"] == f"http://{host}/?sbx_preview={token_of(link['url'])}"
        on_host = {"Host": host}
        first = await hosted.get(f"/?sbx_preview={token_of(link['url'])}", headers=on_host)
        assert first.status_code == 303
        assert first.headers["location"] == "/"
        jar: SimpleCookie = SimpleCookie()
        jar.load(first.headers["set-cookie"])
        assert jar["sbx_preview"]["path"] == "/"
        cookie = {"Cookie": f"sbx_preview={jar['sbx_preview'].value}"}
        assert (await hosted.get("/", headers={**on_host, **cookie})).text == "hello-from-sandbox\n"
        assert (await hosted.get("/sub/", headers={**on_host, **cookie})).text == "in-sub\n"
        redirect = await hosted.get("/sub", headers={**on_host, **cookie})
        assert redirect.headers["location"] == "/sub/"
        # The API's own routes are not on a preview host: the sandbox answers (busybox's 404 page).
        not_api = await hosted.get("/auth/me", headers={**on_host, **cookie, **owner.headers})
        assert not_api.status_code == 404
        assert "<H1>404 Not Found</H1>" in not_api.text
        # Another sandbox's host does not take this sandbox's cookie.
        elsewhere = {"Host": f"{WS_PORT}-{web_sandbox['id']}.preview.test"}
        error_of(await hosted.get("/", headers={**elsewhere, **cookie}), 401, "UNAUTHORIZED")
