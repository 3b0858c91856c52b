"""The sandbox page's Processes, Files and Preview tabs in a real browser against the real
platform: a background process started and its output shown, a file uploaded through the file
input, listed, opened and downloaded, and a preview link made for a port.

The user and the running sandbox are made through the API (the dashboard's sign-up and create
forms have tests of their own in test_dashboard.py); the browser is signed in with that user's
token in the dashboard's storage. Screenshots are saved under test-artifacts/web/.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.support.api import User, data_of
from tests.support.platform import Platform
from tests.support.sandboxes import destroy_all, exec_in, run_sandbox
from tests.web.conftest import Watch

# Where the dashboard keeps its session (src/session.tsx).
SESSION_KEY = "sbx.session"


@pytest.fixture(scope="module")
async def api(ui_api: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with ui_api.client() as http:
        yield http


@pytest.fixture(scope="module")
async def signed_up(api: httpx.AsyncClient) -> AsyncIterator[dict[str, Any]]:
    """The signup answer (`{token, user}`): the dashboard stores exactly this."""
    email = f"web-ws-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": "correct horse battery"}
    answer = data_of(await api.post("/auth/signup", json=body), 201)
    yield answer
    await destroy_all(api, User(id=answer["user"]["id"], email=email, token=answer["token"]))


@pytest.fixture(scope="module")
def owner(signed_up: dict[str, Any]) -> User:
    return User(id=signed_up["user"]["id"], email=signed_up["user"]["email"], token=signed_up["token"])


@pytest.fixture(scope="module")
async def sandbox(api: httpx.AsyncClient, owner: User, test_image: str) -> dict[str, Any]:
    return await run_sandbox(api, owner, test_image, "exec sleep 3600")


@pytest.fixture
async def sandbox_page(
    ui_api: Platform, watched_page: tuple[Page, Watch], signed_up: dict[str, Any], sandbox: dict[str, Any]
) -> tuple[Page, Watch]:
    """The sandbox's page, signed in as its owner, its workspace panel shown."""
    page, watch = watched_page
    page.set_default_timeout(30_000)
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(f"{ui_api.api_url}/ui/")
    stored = json.dumps({"token": signed_up["token"], "user": signed_up["user"]})
    await page.evaluate("([key, value]) => window.localStorage.setItem(key, value)", [SESSION_KEY, stored])
    await page.goto(f"{ui_api.api_url}/ui/sandboxes/{sandbox['id']}")
    await expect(page.get_by_role("heading", name="Workspace")).to_be_visible()
    return page, watch


async def shot(page: Page, artifacts: Path, name: str) -> None:
    await page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


@pytest.mark.timeout(300)
async def test_a_background_process_is_started_and_its_output_shown(
    sandbox_page: tuple[Page, Watch], artifacts: Path
) -> None:
    page, watch = sandbox_page
    await expect(page.get_by_role("tab", name="Processes")).to_have_attribute("aria-selected", "true")
    await page.get_by_label("Process command").fill("echo hello-from-process")
    await page.get_by_role("button", name="Start process").click()

    output = page.get_by_label("Process output")
    await expect(output).to_contain_text("hello-from-process")
    row = page.get_by_role("table", name="Processes").locator("tbody tr").first
    await expect(row).to_have_attribute("data-status", "exited")
    await expect(row.locator("td").nth(2)).to_have_text("0")
    await expect(row).to_contain_text("echo hello-from-process")
    await shot(page, artifacts, "20-workspace-processes")

    # A long one is ended with TERM from its row.
    await page.get_by_label("Process command").fill("exec sleep 600")
    await page.get_by_role("button", name="Start process").click()
    sleeper = page.get_by_role("table", name="Processes").locator("tbody tr", has_text="sleep 600")
    await expect(sleeper).to_have_attribute("data-status", "running")
    await sleeper.get_by_role("button", name="TERM").click()
    await expect(sleeper).not_to_have_attribute("data-status", "running")
    await watch.assert_clean(page)


@pytest.mark.timeout(300)
async def test_a_file_is_uploaded_listed_and_opened(
    sandbox_page: tuple[Page, Watch],
    api: httpx.AsyncClient,
    owner: User,
    sandbox: dict[str, Any],
    artifacts: Path,
) -> None:
    page, watch = sandbox_page
    made = await exec_in(api, owner, sandbox["id"], "mkdir -p /work/inner")
    assert made["exitCode"] == 0, made
    await page.get_by_role("tab", name="Files").click()
    await page.get_by_role("textbox", name="Directory").fill("/work")
    await page.get_by_role("button", name="Go", exact=True).click()
    files = page.get_by_role("table", name="Files")
    await expect(files.locator('tr[data-path="/work/inner"]')).to_be_visible()

    await page.locator('input[type="file"]').set_input_files(
        {"name": "note.txt", "mimeType": "text/plain", "buffer": b"uploaded from the browser\n"}
    )
    entry = files.locator('tr[data-path="/work/note.txt"]')
    await expect(entry).to_be_visible()
    await entry.get_by_role("button", name="note.txt").click()
    await expect(page.get_by_label("File content")).to_have_text("uploaded from the browser\n")
    await shot(page, artifacts, "21-workspace-files")

    # Downloaded: the same bytes, named after the file.
    async with page.expect_download() as fetched:
        await entry.get_by_role("button", name="Download").click()
    download = await fetched.value
    assert download.suggested_filename == "note.txt"
    saved = Path(await download.path())
    assert saved.read_bytes() == b"uploaded from the browser\n"

    # Into a directory and up again; then the file deleted.
    await files.get_by_role("button", name="inner/").click()
    await expect(page.get_by_text("This directory is empty.")).to_be_visible()
    await page.get_by_role("button", name="Up", exact=True).click()
    await entry.get_by_role("button", name="Delete").click()
    await expect(entry).to_have_count(0)
    await watch.assert_clean(page)


@pytest.mark.timeout(300)
async def test_a_preview_link_is_made_for_a_port(
    sandbox_page: tuple[Page, Watch], sandbox: dict[str, Any], artifacts: Path
) -> None:
    page, watch = sandbox_page
    await page.get_by_role("tab", name="Preview").click()
    await page.get_by_role("textbox", name="Port").fill("8080")
    await page.get_by_role("button", name="Preview", exact=True).click()
    link = page.get_by_role("list", name="Preview URLs").get_by_role("link")
    await expect(link).to_have_count(1)
    href = await link.get_attribute("href")
    assert href is not None
    assert sandbox["id"] in href, href
    assert "8080" in href, href
    await expect(link).to_have_attribute("target", "_blank")
    await shot(page, artifacts, "22-workspace-preview")
    await watch.assert_clean(page)
