"""The web dashboard under test: built once per session from `clients/web`, served by an API
process of its own (`SBX_UI_DIR` pointing at the build) beside the session's platform, and
driven by Playwright in Debian's Chromium.

Chromium is required, not optional: without `/usr/bin/chromium` (or `SBX_CHROMIUM`) the browser
tests fail with a message saying so, and never skip (`.ci/run` installs Debian's `chromium`).
Playwright's own browser download (`playwright install`) is never used.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Request,
    Route,
    async_playwright,
    expect,
)
from sbx_devstack.webui import BuildError, build

from tests.support.platform import Platform, start_api

# What the pages wait on (a sandbox's exec, a snapshot) goes through Docker: on a busy machine a
# first exec (which opens the sandbox's agent session) can take longer than Playwright's 5 s
# default, so assertions wait up to 30 s for their condition.
expect.set_options(timeout=30_000)

REPO = Path(__file__).resolve().parents[2]
# Screenshots of every browser test, kept after the run (git-ignored).
ARTIFACTS = REPO / "test-artifacts" / "web"
CHROMIUM = os.environ.get("SBX_CHROMIUM", "/usr/bin/chromium")
# What headless Chromium needs on a machine without a display or a network beyond loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def dashboard_dist() -> Path:
    """clients/web built (npm ci from the lockfiles when needed, then the build) unless current."""
    try:
        result = build(say=lambda line: print(f"[web] {line}"))
    except BuildError as exc:
        pytest.fail(f"the web dashboard could not be built: {exc}")
    return result.dist


@pytest.fixture(scope="session")
def ui_api(
    platform: Platform, dashboard_dist: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """An API process on the session's database and NATS that serves the dashboard's build."""
    api = start_api(platform.base_env, tmp_path_factory.mktemp("ui-api"), SBX_UI_DIR=str(dashboard_dist))
    yield api
    api.stop_all()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests need Debian's chromium "
            "(apt-get install chromium, as .ci/run does) or SBX_CHROMIUM naming a Chromium binary"
        )
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nweb test screenshots: {ARTIFACTS}")
    return ARTIFACTS


class Watch:
    """What a page did that a test wants to assert on afterwards: requests to other hosts
    (refused), Content-Security-Policy violations, and script errors."""

    def __init__(self) -> None:
        self.foreign: list[str] = []
        self.violations: list[str] = []
        self.errors: list[str] = []

    async def assert_clean(self, page: Page) -> None:
        self.violations.extend(await _violations(page))
        assert self.foreign == [], f"requests to other hosts: {self.foreign}"
        assert self.violations == [], f"Content-Security-Policy violations: {self.violations}"
        assert self.errors == [], f"script errors: {self.errors}"


# Records every CSP violation the page reports; run before the page's own scripts (an init
# script is added by the browser itself, so the page's policy does not apply to it).
_RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    await ctx.add_init_script(_RECORD_VIOLATIONS)
    yield ctx
    await ctx.close()


@pytest.fixture
async def watched_page(context: BrowserContext) -> tuple[Page, Watch]:
    """A page that may only reach loopback, with everything else it tries recorded."""
    watch = Watch()

    async def only_loopback(route: Route, request: Request) -> None:
        host = request.url.split("/")[2] if "://" in request.url else ""
        if request.url.startswith(("data:", "blob:")) or host.startswith(("127.0.0.1", "localhost")):
            await route.continue_()
        else:
            watch.foreign.append(request.url)
            await route.abort()

    await context.route("**/*", only_loopback)
    page = await context.new_page()
    page.on("console", lambda msg: _console(msg.type, msg.text, watch))
    page.on("pageerror", lambda error: watch.errors.append(str(error)))
    return page, watch


def _console(kind: str, text: str, watch: Watch) -> None:
    if "Content Security Policy" in text or "Content-Security-Policy" in text:
        watch.violations.append(text)


async def _violations(page: Page) -> list[str]:
    try:
        found = await page.evaluate("window.__cspViolations || []")
    except Exception:
        return []
    return [str(v) for v in found]
