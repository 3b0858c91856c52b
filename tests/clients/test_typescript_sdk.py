"""The TypeScript SDK (`clients/typescript`): its lint, its generated types against the API's
current OpenAPI document, and its own test suite run against the session's platform.

Node and npm are required, not optional: without them these tests fail instead of skipping, so
CI never passes with the SDK unchecked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.platform import Platform

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "typescript"
# The closing counts of node's test runner: `# tests 12` (TAP reporter) or the same after U+2139 (spec).
SUMMARY = re.compile(r"^(?:#|\u2139) (tests|pass|fail|skipped|todo|cancelled) (\d+)$", re.MULTILINE)
REGENERATE = "run `npm run generate` in clients/typescript and commit the result"


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=CLIENT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    command = " ".join(result.args)
    assert result.returncode == 0, (
        f"`{command}` exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """The SDK's dependencies, installed from its lockfile when missing (`npm ci` also builds it)."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        tools = " and ".join(missing)
        pytest.fail(f"{tools} not found: the TypeScript SDK cannot be checked (.ci/run installs them)")
    modules = CLIENT_DIR / "node_modules"
    if not modules.is_dir():
        assert_ok(run("npm", "ci", "--no-audit", "--no-fund"))
    return modules


@pytest.mark.timeout(600)
def test_lint_and_strict_types(node_modules: Path) -> None:
    assert_ok(run("npm", "run", "lint"))
    assert_ok(run("npm", "run", "typecheck"))
    assert_ok(run("npm", "run", "build"))


@pytest.mark.timeout(300)
def test_generated_types_match_the_api(node_modules: Path, tmp_path: Path) -> None:
    current = tmp_path / "openapi.json"
    assert_ok(run(sys.executable, "scripts/dump_openapi.py", str(current)))
    committed = CLIENT_DIR / "openapi.json"
    assert committed.read_text(encoding="utf-8") == current.read_text(encoding="utf-8"), (
        f"clients/typescript/openapi.json differs from the API's OpenAPI document: {REGENERATE}"
    )
    result = run("npm", "run", "check:generated")
    assert result.returncode == 0, (
        f"src/generated/openapi.ts is stale: {REGENERATE}\n{result.stdout}{result.stderr}"
    )


@pytest.mark.timeout(1200)
def test_sdk_suite_against_the_platform(node_modules: Path, platform: Platform, test_image: str) -> None:
    env = {
        **os.environ,
        "SBX_API_URL": platform.api_url,
        "SBX_WS_URL": platform.ws_url,
        "SBX_TEST_IMAGE": test_image,
    }
    result = run("npm", "test", env=env, timeout=1100)
    assert_ok(result)
    # A run that found no test, or skipped some, must not pass.
    counts = dict(SUMMARY.findall(result.stdout))
    assert int(counts.get("tests", "0")) > 0, result.stdout
    assert counts.get("pass") == counts["tests"], result.stdout
    print(result.stdout[-2000:])
