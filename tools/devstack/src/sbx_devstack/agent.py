"""Builds the in-sandbox agent (`agent/`, Go, standard library only) when it is missing or stale,
for `make agent`, `make run` and the tests.

Stale means: the hash of the agent's sources (every `.go` file and `go.mod`) differs from the
one written beside the last build. The binary is static (`CGO_ENABLED=0`) and stripped, so it
runs in any image, a FROM-scratch one included. It is built into a temporary name and renamed,
so concurrent builds (two test sessions) never leave half a binary behind.

`python -m sbx_devstack.agent [--force]` builds from the command line.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
SOURCE = REPO / "agent"
OUTPUT = REPO / ".build" / "agent" / "sbx-agent"
HASH_SUFFIX = ".source-hash"


class AgentBuildError(RuntimeError):
    """The agent could not be built; the message says why."""


def source_hash(source: Path = SOURCE) -> str:
    digest = hashlib.sha256()
    for path in sorted([*source.glob("*.go"), source / "go.mod"]):
        if path.name.endswith("_test.go"):
            continue
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def is_current(output: Path = OUTPUT) -> bool:
    stamp = output.with_name(output.name + HASH_SUFFIX)
    return output.is_file() and stamp.is_file() and stamp.read_text().strip() == source_hash()


def build(output: Path = OUTPUT, force: bool = False) -> Path:
    """The agent's binary, built first when missing or stale."""
    if not force and is_current(output):
        return output
    go = shutil.which("go")
    if go is None:
        raise AgentBuildError("Go is not installed (Debian: apt-get install golang-go)")
    output.parent.mkdir(parents=True, exist_ok=True)
    expected = source_hash()
    with tempfile.TemporaryDirectory(dir=output.parent) as scratch:
        target = Path(scratch) / "sbx-agent"
        env = {
            **os.environ,
            "CGO_ENABLED": "0",
            "GOFLAGS": "-mod=mod",
            "GOPROXY": "off",
            "GOCACHE": os.environ.get("GOCACHE", str(output.parent / "go-cache")),
        }
        done = subprocess.run(
            [go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(target), "."],
            cwd=SOURCE,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise AgentBuildError(f"go build failed: {done.stderr.strip()[-2000:]}")
        target.replace(output)
        stamp = Path(scratch) / "stamp"
        stamp.write_text(expected)
        stamp.replace(output.with_name(output.name + HASH_SUFFIX))
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the in-sandbox agent when missing or stale.")
    parser.add_argument("--force", action="store_true", help="build even when up to date")
    args = parser.parse_args()
    try:
        path = build(force=args.force)
    except AgentBuildError as exc:
        print(f"sbx-agent: {exc}", file=sys.stderr)  # noqa: T201
        raise SystemExit(1) from None
    print(path)  # noqa: T201


if __name__ == "__main__":
    main()
