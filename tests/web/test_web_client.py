"""The dashboard's own checks, so that `make test` runs them: eslint (strict, type-checked),
TypeScript strict, and its vitest unit tests. Node.js and npm are required: without them these
tests fail (the `dashboard_dist` fixture says why), never skip."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "clients" / "web"
# vitest's closing line, e.g. "      Tests  23 passed (23)" (colours off with NO_COLOR).
VITEST_TESTS = re.compile(r"^\s*Tests\s+(?:(\d+) failed \| )?(\d+) passed \((\d+)\)", re.MULTILINE)


def npm(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["npm", *args],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "CI": "true"},
    )
    assert result.returncode == 0, (
        f"`npm {' '.join(args)}` exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


@pytest.mark.timeout(600)
def test_lint_and_strict_types(dashboard_dist: Path) -> None:
    npm("run", "lint")
    npm("run", "typecheck")


@pytest.mark.timeout(300)
def test_unit_tests(dashboard_dist: Path) -> None:
    result = npm("test")
    found = VITEST_TESTS.search(result.stdout)
    assert found is not None, result.stdout
    failed, passed, total = found.groups()
    assert failed is None, result.stdout
    assert int(passed) == int(total) > 0, result.stdout
    print(result.stdout[-600:])
