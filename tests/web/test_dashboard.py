"""The dashboard in a real browser against the real platform: a person signs up, makes an
environment without network (and a second version of it, and a secret), starts a sandbox and
watches it turn running without reloading, changes its network policy, uses its terminal (also
across an API restart), reads its logs, sees its CPU chart draw, runs a command, then stops and
destroys it. A snapshot of a sandbox starts another with its files (and a volume mounted).
API keys (with an expiry), a password change and a logout that really ends the
session have a test of their own. Screenshots are saved under test-artifacts/web/.

Run this file alone: it drives Chromium and a sandbox, which a loaded 2-core machine feels.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, expect

from tests.support.platform import Platform
from tests.support.waiting import wait_for
from tests.web.conftest import Watch

TICKER = "sh -c 'while true; do echo tick; sleep 0.5; done'"
# Text of the terminal's rows, as xterm.js's DOM renderer draws them.
TERMINAL_ROWS = (
    "() => [...document.querySelectorAll('.xterm-rows > div')].map((row) => row.textContent.trim())"
)


async def shot(page: Page, artifacts: Path, name: str) -> None:
    path = artifacts / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


async def terminal_lines(page: Page) -> list[str]:
    rows: list[str] = await page.evaluate(TERMINAL_ROWS)
    return rows


async def wait_for_terminal_line(page: Page, wanted: str, timeout: float = 20) -> list[str]:
    """Until a row of the terminal reads exactly `wanted` (a command's output, not its echo)."""
    deadline = asyncio.get_running_loop().time() + timeout
    rows: list[str] = []
    while asyncio.get_running_loop().time() < deadline:
        rows = await terminal_lines(page)
        if wanted in rows:
            return rows
        await asyncio.sleep(0.2)
    raise AssertionError(f"the terminal never showed a line {wanted!r}; it shows {rows}")


async def sign_up(page: Page, base: str) -> str:
    email = f"web-{uuid.uuid4().hex[:10]}@example.com"
    await page.goto(f"{base}/ui/")
    # Not signed in: the dashboard sends a visitor to log in, which links to signing up.
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await page.get_by_role("main").get_by_role("link", name="Sign up").click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill("correct horse battery")
    await page.get_by_role("button", name="Sign up").click()
    await expect(page.get_by_role("heading", name="Sandboxes")).to_be_visible()
    await expect(page.get_by_text(email)).to_be_visible()
    return email


@pytest.mark.timeout(900)
async def test_a_person_runs_a_sandbox_from_the_dashboard(
    ui_api: Platform, test_image: str, watched_page: tuple[Page, Watch], artifacts: Path
) -> None:
    page, watch = watched_page
    page.set_default_timeout(30_000)
    base = ui_api.api_url
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await sign_up(page, base)

    # An environment: the test image, a command that prints a line every 0.5 s.
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Environments").click()
    await page.get_by_role("button", name="New environment").click()
    await page.get_by_label("Name", exact=True).fill("ticker")
    await page.get_by_label("Image").fill(test_image)
    await page.get_by_label("Command").fill(TICKER)
    await page.get_by_label("Variables").fill("GREETING=hello")
    # An allow entry the API refuses: its message is shown on the network field, naming it.
    await page.get_by_label("Egress").select_option("allowlist")
    await page.get_by_label("Allowed hosts").fill("203.0.113.0/24\nbad!host")
    await page.get_by_role("button", name="Create environment").click()
    problems = page.get_by_role("alert", name="Network problems")
    await expect(problems).to_contain_text('"bad!host"')
    await expect(page.get_by_label("Allowed hosts")).to_have_attribute("aria-invalid", "true")
    await shot(page, artifacts, "00-environment-network-error")
    # No network at all: the allow list is no longer asked for.
    await page.get_by_label("Egress").select_option("none")
    await expect(page.get_by_label("Allowed hosts")).to_have_count(0)
    await expect(problems).to_have_count(0)
    # The runtime is chosen from those GET /info lists; the disk is set in MiB.
    info = await (await page.request.get(f"{base}/info")).json()
    runtime = page.get_by_label("Runtime")
    await expect(runtime.locator("option")).to_have_count(len(info["data"]["runtimes"]))
    offered = await runtime.locator("option").evaluate_all("(options) => options.map((o) => o.value)")
    assert offered == info["data"]["runtimes"]
    await runtime.select_option("runc")
    await page.get_by_label("Disk (MiB)").fill("512")
    await shot(page, artifacts, "00-environment-form")
    await page.get_by_role("button", name="Create environment").click()
    await expect(page.get_by_role("heading", name=re.compile(r"ticker\s*v1"))).to_be_visible()
    settings = page.locator("dl.settings")
    await expect(settings.locator("div", has=page.get_by_text("runtime", exact=True))).to_contain_text("runc")
    await expect(settings.locator("div", has=page.get_by_text("disk", exact=True))).to_contain_text("512 MiB")
    await expect(settings.locator("div", has=page.get_by_text("network", exact=True))).to_contain_text("none")

    # A second version, compared with the first.
    await page.get_by_role("button", name="Edit").click()
    await page.get_by_label("Memory (MiB)").fill("128")
    await page.get_by_label("Disk (MiB)").fill("1024")
    await page.get_by_role("button", name="Save as v2").click()
    await expect(page.get_by_role("heading", name=re.compile(r"ticker\s*v2"))).to_be_visible()
    diff = page.get_by_role("table", name="Changes from v1 to v2")
    await expect(diff.get_by_role("row", name=re.compile("memory"))).to_contain_text("128 MiB")
    await expect(diff.get_by_role("row", name=re.compile("disk"))).to_contain_text("1024 MiB")
    await expect(diff.get_by_role("row", name=re.compile("network"))).to_have_count(0)

    # A secret: listed by its key, its value never shown.
    await page.get_by_label("Key").fill("API_TOKEN")
    await page.get_by_label("Value").fill("s3cret-value-never-shown")
    await page.get_by_role("button", name="Set secret").click()
    await expect(page.get_by_role("button", name="Delete secret API_TOKEN")).to_be_visible()
    assert "s3cret-value-never-shown" not in await page.content()
    await shot(page, artifacts, "01-environment")

    # A sandbox from it, created on the list page; it turns running by the events socket alone.
    await page.get_by_role("link", name="New sandbox").click()
    await expect(page.get_by_text("Live", exact=True)).to_be_visible()
    reads: list[str] = []
    page.on(
        "request",
        lambda request: (
            reads.append(request.url)
            if request.method == "GET" and "/sandboxes" in request.url and "/ui/" not in request.url
            else None
        ),
    )
    await page.get_by_label("Name (optional)").fill("web-e2e")
    await page.get_by_role("button", name="Create sandbox").click()
    row = page.locator("tr", has=page.get_by_role("link", name="web-e2e"))
    await expect(row).to_be_visible()
    await expect(row.locator("[data-status]")).to_have_attribute("data-status", "running", timeout=90_000)
    # Events moved it: no list was read again, and the sandbox itself at most once (when its
    # first events overtake the answer to the create by more than a second).
    lists = [url for url in reads if re.search(r"/sandboxes(\?|$)", url)]
    assert lists == [], f"the list was read again instead of following events: {reads}"
    assert len(reads) <= 1, f"the sandbox was polled instead of following events: {reads}"
    sandbox_id = await row.get_attribute("data-sandbox-id")
    assert sandbox_id
    await shot(page, artifacts, "02-sandboxes-live")

    # Its page, opened by a deep link (a full load of /ui/sandboxes/<id>).
    await page.goto(f"{base}/ui/sandboxes/{sandbox_id}")
    await expect(page.get_by_role("heading", name=re.compile("web-e2e"))).to_be_visible()
    timeline = page.get_by_role("list", name="Status timeline")
    await expect(timeline.locator("[data-status=running]").first).to_be_visible()

    details = page.get_by_role("region", name="Details")
    await expect(details).to_contain_text("1024 MiB disk")
    await expect(details.locator("div", has=page.get_by_text("runtime", exact=True))).to_contain_text("runc")

    # Its network policy, from the environment, changed on its page.
    policy = page.get_by_test_id("sandbox-network")
    await expect(policy).to_have_text("none")
    await page.get_by_role("button", name="Change network").click()
    await page.get_by_label("Egress").select_option("allowlist")
    await page.get_by_label("Allowed hosts").fill("203.0.113.0/24, 198.51.100.0/24")
    await page.get_by_role("button", name="Apply policy").click()
    await expect(policy).to_have_text("allowlist: 203.0.113.0/24, 198.51.100.0/24")
    await expect(page.get_by_text("Network policy changed")).to_be_visible()
    await shot(page, artifacts, "03-sandbox-network")

    # The terminal: type a command, read its output from xterm's rows.
    terminal = page.locator(".terminal-pane")
    await expect(terminal).to_have_attribute("data-state", "open", timeout=30_000)
    await page.locator(".terminal-host").click()
    await page.keyboard.type("echo hi\n")
    await wait_for_terminal_line(page, "hi")

    # The terminal fits a narrower window and tells the shell its new size.
    await page.keyboard.type("stty size\n")
    wide = await wait_for_stty(page)
    await page.set_viewport_size({"width": 600, "height": 900})
    await page.keyboard.type("clear; stty size\n")
    narrow = await wait_for_stty(page, other_than=wide)
    assert narrow[1] < wide[1], f"columns did not shrink with the window: {wide} -> {narrow}"
    await shot(page, artifacts, "03-sandbox-narrow")
    await page.set_viewport_size({"width": 1280, "height": 900})

    # Logs arrive live, and the search filters them.
    lines = page.get_by_role("log", name="Log lines")
    await expect(lines).to_contain_text("tick")
    first = int(await lines.get_attribute("data-count") or 0)
    await wait_for(lambda: more_than(first, count(lines)), timeout=15, what="new log lines")
    await page.get_by_role("searchbox", name="Search").fill("no-such-text")
    await expect(lines).to_contain_text("No line matches.")
    await page.get_by_role("searchbox", name="Search").fill("tick")
    await expect(lines.locator(".log-line").first).to_contain_text("tick")

    # The CPU chart draws points from the metrics route.
    cpu = page.locator("figure[data-chart=CPU]")
    await wait_for(lambda: more_than(1, points(cpu)), timeout=60, what="two points on the CPU chart")

    # The exec box.
    await page.get_by_role("textbox", name="Command", exact=True).fill(
        "echo from-exec; echo oops >&2; exit 3"
    )
    await page.get_by_role("button", name="Run").click()
    result = page.locator(".exec-result")
    await expect(result).to_have_attribute("data-exit-code", "3")
    await expect(result).to_contain_text("from-exec")
    await expect(result).to_contain_text("oops")
    await shot(page, artifacts, "04-sandbox")

    # The API goes away and comes back: the terminal reopens by itself on the same screen.
    await asyncio.to_thread(ui_api.restart_service, "api")
    await expect(terminal).to_have_attribute("data-state", "open", timeout=60_000)
    await page.locator(".terminal-host").click()
    await page.keyboard.type("echo back-again\n")
    await wait_for_terminal_line(page, "back-again")

    # Stop, then destroy; the status follows each.
    await page.get_by_role("button", name="Stop", exact=True).click()
    heading_status = page.get_by_role("heading", name=re.compile("web-e2e")).locator("[data-status]")
    await expect(heading_status).to_have_attribute("data-status", "stopped", timeout=60_000)
    await page.get_by_role("button", name="Destroy", exact=True).click()
    await expect(heading_status).to_have_attribute("data-status", "destroyed", timeout=60_000)
    await expect(timeline.locator("[data-status=destroyed]").first).to_be_visible()
    await shot(page, artifacts, "05-destroyed")

    await watch.assert_clean(page)

    # Log out: back to the login page, and the dashboard no longer opens.
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await page.goto(f"{base}/ui/sandboxes")
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()


async def count(locator: Locator) -> int:
    return int(await locator.get_attribute("data-count") or 0)


async def points(locator: Locator) -> int:
    return int(await locator.get_attribute("data-points") or 0)


async def more_than(floor: int, value: Awaitable[int]) -> int | None:
    found = await value
    return found if found > floor else None


async def wait_for_stty(page: Page, other_than: tuple[int, int] | None = None) -> tuple[int, int]:
    """The last `rows cols` line `stty size` printed in the terminal."""
    deadline = asyncio.get_running_loop().time() + 20
    rows: list[str] = []
    while asyncio.get_running_loop().time() < deadline:
        rows = await terminal_lines(page)
        sizes = [tuple(int(n) for n in row.split()) for row in rows if re.fullmatch(r"\d+ \d+", row)]
        if sizes and sizes[-1] != other_than:
            size = sizes[-1]
            return size[0], size[1]
        await asyncio.sleep(0.2)
    raise AssertionError(f"no new `stty size` output in the terminal: {rows}")


@pytest.mark.timeout(300)
async def test_api_keys_are_shown_once_listed_and_revoked(
    ui_api: Platform, watched_page: tuple[Page, Watch], artifacts: Path
) -> None:
    page, watch = watched_page
    page.set_default_timeout(30_000)
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await sign_up(page, ui_api.api_url)
    await page.get_by_role("link", name="API keys").click()
    await page.get_by_label("Name").fill("ci-runner")
    await page.get_by_role("button", name="Create key").click()
    key = await page.get_by_test_id("new-api-key").text_content()
    assert key is not None
    assert key.startswith("sk_")
    await expect(page.get_by_role("button", name="Copy")).to_be_visible()
    await shot(page, artifacts, "06-api-key")
    await page.get_by_role("button", name="Done").click()
    assert key not in await page.content()
    await expect(page.get_by_role("cell", name="ci-runner", exact=True)).to_be_visible()
    forever = page.locator("tr", has=page.get_by_role("cell", name="ci-runner", exact=True))
    await expect(forever.get_by_test_id("key-expiry")).to_have_text("never")

    # A key that expires: its expiresAt is listed (in days from now, the time in the title).
    await page.get_by_label("Name").fill("nightly")
    await page.get_by_label("Expires in days (optional)").fill("30")
    await page.get_by_role("button", name="Create key").click()
    await expect(page.get_by_test_id("new-api-key")).to_be_visible()
    await page.get_by_role("button", name="Done").click()
    nightly = page.locator("tr", has=page.get_by_role("cell", name="nightly", exact=True))
    expiry = nightly.get_by_test_id("key-expiry")
    await expect(expiry).to_have_text(re.compile(r"^in (29|30) days$"))
    assert await nightly.get_attribute("data-expired") == "false"
    expires_at = await expiry.locator("time").get_attribute("datetime")
    assert expires_at
    left = datetime.fromisoformat(expires_at) - datetime.now(UTC)
    assert timedelta(days=29, hours=23) < left <= timedelta(days=30), expires_at
    await shot(page, artifacts, "06-api-key-expiry")

    await page.get_by_role("button", name="Revoke ci-runner").click()
    await expect(page.get_by_role("cell", name="ci-runner", exact=True)).to_have_count(0)
    await page.get_by_role("button", name="Revoke nightly").click()
    await expect(page.get_by_text("No API keys yet.")).to_be_visible()
    # Logging out when the API cannot revoke the token still forgets it in this browser.
    await page.route("**/auth/logout", lambda route: route.abort())
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_text("You are logged out.")).to_be_visible()
    await page.unroute("**/auth/logout")
    # A wrong password on the login page reads as the API's sentence, not as JSON.
    await page.get_by_label("Email").fill("nobody@example.com")
    await page.get_by_label("Password").fill("wrong password")
    await page.get_by_role("main").get_by_role("button", name="Log in").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_be_visible()
    assert "{" not in (await alert.text_content() or "")
    # A token the API no longer takes (expired, say) signs out at the first call, saying why.
    await page.evaluate(
        "localStorage.setItem('sbx.session', JSON.stringify("
        "{token: 'expired.token.here', user: {id: 'x', email: 'ghost@example.com', createdAt: ''}}))"
    )
    await page.goto(f"{ui_api.api_url}/ui/environments")
    await expect(page.get_by_text("Your session has ended. Log in again.")).to_be_visible()
    await watch.assert_clean(page)


async def run_in_exec_box(page: Page, command: str) -> Locator:
    """Run `command` in the sandbox page's exec box; the result once it is shown."""
    panel = page.get_by_role("region", name="Run a command")
    result = panel.locator(".exec-result")
    before = await result.count()
    field = panel.get_by_role("textbox", name="Command", exact=True)
    await field.fill(command)
    await expect(field).to_have_value(command)
    await panel.get_by_role("button", name="Run", exact=True).click()
    if before == 0:
        # The result, or the error the box shows instead: a failure names what the user saw.
        await expect(result.or_(panel.get_by_role("alert"))).to_be_visible()
        alerts = panel.get_by_role("alert")
        if await alerts.count():
            pytest.fail(f"the exec box showed an error: {await alerts.first.inner_text()}")
    return result


@pytest.mark.timeout(600)
async def test_a_snapshot_starts_a_new_sandbox_with_a_volume_mounted(
    ui_api: Platform, test_image: str, watched_page: tuple[Page, Watch], artifacts: Path
) -> None:
    page, watch = watched_page
    page.set_default_timeout(30_000)
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await sign_up(page, ui_api.api_url)
    main_menu = page.get_by_role("navigation", name="Main")

    await main_menu.get_by_role("link", name="Environments").click()
    await page.get_by_role("button", name="New environment").click()
    await page.get_by_label("Name", exact=True).fill("snapper")
    await page.get_by_label("Image").fill(test_image)
    await page.get_by_label("Command").fill("sleep 3600")
    await page.get_by_role("button", name="Create environment").click()
    await expect(page.get_by_role("heading", name=re.compile(r"snapper\s*v1"))).to_be_visible()

    # A sandbox from the environment, a file written in it with the exec box (the test image
    # has no /tmp of its own).
    await page.get_by_role("link", name="New sandbox").click()
    await page.get_by_label("Name (optional)").fill("snap-source")
    await page.get_by_role("button", name="Create sandbox").click()
    row = page.locator("tr", has=page.get_by_role("link", name="snap-source"))
    await expect(row.locator("[data-status]")).to_have_attribute("data-status", "running", timeout=90_000)
    await row.get_by_role("link", name="snap-source").click()
    await expect(page.get_by_role("heading", name=re.compile("snap-source"))).to_be_visible()
    written = await run_in_exec_box(page, "mkdir -p /tmp && echo snap > /tmp/f")
    await expect(written).to_have_attribute("data-exit-code", "0")

    # The snapshot: in progress, then ready, and listed among the sandbox's snapshots.
    snapshots = page.get_by_role("region", name="Snapshots")
    await snapshots.get_by_label("Snapshot name (optional)").fill("with-file")
    await snapshots.get_by_role("button", name="Snapshot", exact=True).click()
    await expect(snapshots.get_by_text("Snapshot with-file is ready")).to_be_visible(timeout=120_000)
    listed = snapshots.get_by_role("list", name="Snapshots").locator("li", has_text="with-file")
    await expect(listed.locator("[data-status]")).to_have_attribute("data-status", "ready")
    await shot(page, artifacts, "09-snapshot-ready")

    # A volume, made on the Volumes page and listed there, unmounted.
    await main_menu.get_by_role("link", name="Volumes").click()
    await expect(page.get_by_role("heading", name="Volumes")).to_be_visible()
    await page.get_by_label("Name", exact=True).fill("scratch")
    await page.get_by_label("Size (MiB, optional)").fill("64")
    await page.get_by_role("button", name="Create volume").click()
    volume = page.locator("tr", has_text="scratch")
    await expect(volume).to_contain_text("64 MiB")
    await expect(volume.locator("td").nth(3)).to_have_text("none")

    # A sandbox from the snapshot (only ready ones offered), the volume mounted at /data.
    await main_menu.get_by_role("link", name="Sandboxes").click()
    await page.get_by_role("button", name="New sandbox").click()
    await page.get_by_label("A snapshot").check()
    choice = page.get_by_role("combobox", name=re.compile(r"^Snapshot"))
    await expect(choice.locator("option")).to_have_count(1)
    await expect(choice.locator("option")).to_contain_text("with-file")
    await page.get_by_role("button", name="Add a mount").click()
    await page.get_by_label("Mount path").fill("/data")
    await page.get_by_label("Name (optional)").fill("from-snap")
    await page.set_viewport_size({"width": 380, "height": 900})
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await shot(page, artifacts, "09-create-from-snapshot-narrow")
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.get_by_role("button", name="Create sandbox").click()
    copy = page.locator("tr", has=page.get_by_role("link", name="from-snap"))
    await expect(copy.locator("[data-status]")).to_have_attribute("data-status", "running", timeout=90_000)
    await copy.get_by_role("link", name="from-snap").click()
    await expect(page.get_by_role("heading", name=re.compile("from-snap"))).to_be_visible()
    read = await run_in_exec_box(page, "cat /tmp/f && touch /data/kept")
    await expect(read).to_have_attribute("data-exit-code", "0")
    await expect(read.locator("pre.output").first).to_have_text(re.compile(r"^snap\s*$"))
    await shot(page, artifacts, "09-sandbox-from-snapshot")

    # The mounted volume cannot be deleted: the API's 409 reads as a sentence.
    await main_menu.get_by_role("link", name="Volumes").click()
    await expect(volume.get_by_role("link")).to_have_count(1)
    await page.get_by_role("button", name="Delete volume scratch").click()
    await expect(page.get_by_role("alert")).to_contain_text("destroy them first")
    await expect(volume).to_be_visible()
    await shot(page, artifacts, "09-volumes")
    await watch.assert_clean(page)


async def stored_token(page: Page) -> str:
    token: str = await page.evaluate("JSON.parse(localStorage.getItem('sbx.session')).token")
    return token


async def me_status(page: Page, base: str, token: str) -> int:
    answer = await page.request.get(f"{base}/auth/me", headers={"Authorization": f"Bearer {token}"})
    return answer.status


@pytest.mark.timeout(300)
async def test_password_change_and_logout_end_the_old_sessions(
    ui_api: Platform, watched_page: tuple[Page, Watch], artifacts: Path
) -> None:
    page, watch = watched_page
    page.set_default_timeout(30_000)
    base = ui_api.api_url
    email = await sign_up(page, base)
    first = await stored_token(page)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Account").click()
    await expect(page.get_by_role("heading", name="Account")).to_be_visible()
    form = page.get_by_role("form", name="Change password")
    # A narrow window: the form fits without scrolling sideways.
    await page.set_viewport_size({"width": 380, "height": 800})
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await shot(page, artifacts, "08-account-narrow")
    await page.set_viewport_size({"width": 1280, "height": 900})

    # A wrong current password is shown on its field, and the person stays signed in.
    await form.get_by_label("Current password").fill("not my password")
    await form.get_by_label("New password", exact=True).fill("a brand new passphrase")
    await form.get_by_label("Repeat the new password").fill("a brand new passphrase")
    await form.get_by_role("button", name="Change password").click()
    await expect(form.get_by_text("The current password is wrong.")).to_be_visible()
    await expect(page.get_by_title("Signed in as")).to_have_text(email)

    await form.get_by_label("Current password").fill("correct horse battery")
    await form.get_by_role("button", name="Change password").click()
    await expect(page.get_by_role("status").filter(has_text="Password changed")).to_be_visible()
    await shot(page, artifacts, "08-password-changed")
    second = await stored_token(page)
    assert second != first
    # The session before the change has ended; this one goes on with the token the API sent.
    assert await me_status(page, base, first) == 401
    assert await me_status(page, base, second) == 200
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Environments").click()
    await expect(page.get_by_role("heading", name="Environments")).to_be_visible()

    # Logging out revokes the token on the API, not only in this browser.
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await expect(page.get_by_text("You are logged out.")).to_be_visible()
    assert await me_status(page, base, second) == 401
    # Put back in the browser, the old session is refused at its first call.
    await page.evaluate(
        "(token) => localStorage.setItem('sbx.session', JSON.stringify("
        "{token, user: {id: 'x', email: 'ghost@example.com', createdAt: ''}}))",
        second,
    )
    await page.goto(f"{base}/ui/environments")
    await expect(page.get_by_text("Your session has ended. Log in again.")).to_be_visible()

    # The old password no longer opens the account; the new one does.
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill("correct horse battery")
    await page.get_by_role("main").get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_be_visible()
    await page.get_by_label("Password").fill("a brand new passphrase")
    await page.get_by_role("main").get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Environments")).to_be_visible()
    await expect(page.get_by_title("Signed in as")).to_have_text(email)
    await watch.assert_clean(page)


@pytest.mark.timeout(120)
async def test_docs_work_offline(ui_api: Platform, watched_page: tuple[Page, Watch], artifacts: Path) -> None:
    """Swagger UI renders the API's document from the API's own assets, with other hosts blocked."""
    page, watch = watched_page
    await page.goto(f"{ui_api.api_url}/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text(
        "Sandbox Platform API", timeout=30_000
    )
    await expect(page.locator(".opblock").first).to_be_visible()
    await shot(page, artifacts, "07-docs")
    await watch.assert_clean(page)
