"""Builds the web dashboard (`clients/web`) when it is missing or stale, for `make run` and tests.

Stale means: the sources the build reads (the dashboard's and the TypeScript SDK's, their
package files and lockfiles) hash differently from the hash written beside the last build
(`dist/.source-hash`). A hash rather than modification times, because a git checkout or a
copy sets times arbitrarily. Dependencies are installed with `npm ci` from the lockfiles when
`node_modules` is missing or older than its lockfile. Needs Node.js 20.19+ and npm.

`python -m sbx_devstack.webui [--force]` builds from the command line (`make ui`).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
WEB = REPO / "clients" / "web"
SDK = REPO / "clients" / "typescript"
DIST = WEB / "dist"
HASH_FILE = ".source-hash"

# What each package's build reads (relative to its folder).
_SOURCES = {
    WEB: (
        "src",
        "public",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ),
    SDK: ("src", "package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json"),
}


class BuildError(RuntimeError):
    """The dashboard could not be built; the message says why and what to do."""


@dataclass(frozen=True)
class BuildResult:
    dist: Path
    built: bool  # False: the existing build was up to date


def _files(root: Path, names: Iterable[str]) -> list[Path]:
    found: list[Path] = []
    for name in names:
        path = root / name
        if path.is_dir():
            found.extend(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            found.append(path)
    return sorted(found)


def source_hash() -> str:
    """SHA-256 over the path and content of every file the build reads."""
    digest = hashlib.sha256()
    for root, names in _SOURCES.items():
        for path in _files(root, names):
            digest.update(str(path.relative_to(REPO)).encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def is_current(dist: Path = DIST) -> bool:
    stamp = dist / HASH_FILE
    return (dist / "index.html").is_file() and stamp.is_file() and stamp.read_text().strip() == source_hash()


def _npm(args: list[str], cwd: Path, say: Callable[[str], None]) -> None:
    say(f"npm {' '.join(args)} (in {cwd.relative_to(REPO)})")
    result = subprocess.run(["npm", *args], cwd=cwd, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise BuildError(
            f"`npm {' '.join(args)}` in {cwd.relative_to(REPO)} failed ({result.returncode}):\n{tail}"
        )


def _install(package: Path, say: Callable[[str], None]) -> None:
    """`npm ci` when node_modules is missing or older than the lockfile."""
    installed = package / "node_modules" / ".package-lock.json"
    lock = package / "package-lock.json"
    if installed.is_file() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    _npm(["ci", "--no-audit", "--no-fund"], package, say)


def build(force: bool = False, say: Callable[[str], None] = print) -> BuildResult:
    """Build the dashboard into `clients/web/dist` unless it is current; raise BuildError when
    Node.js or npm is missing or a step fails."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise BuildError(
            f"{' and '.join(missing)} not found: install Node.js 20.19+ and npm to build the web dashboard"
        )
    if not force and is_current():
        return BuildResult(DIST, built=False)
    wanted = source_hash()
    _install(SDK, say)
    _install(WEB, say)
    _npm(["run", "build"], WEB, say)  # its prebuild step builds the SDK first
    (DIST / HASH_FILE).write_text(wanted + "\n")
    return BuildResult(DIST, built=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the web dashboard when missing or stale.")
    parser.add_argument("--force", action="store_true", help="build even when the last build is current")
    args = parser.parse_args(argv)
    try:
        result = build(force=args.force)
    except BuildError as exc:
        print(exc, file=sys.stderr)  # noqa: T201
        raise SystemExit(1) from exc
    print(f"web dashboard {'built' if result.built else 'up to date'}: {result.dist}")  # noqa: T201


if __name__ == "__main__":
    main()
