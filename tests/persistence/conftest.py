"""Fixtures of the persistence tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.platform import Platform


@pytest.fixture(scope="session", autouse=True)
def volumes_dir(platform: Platform) -> Iterator[Path]:
    """The session's volumes directory, removed at the end once every volume is gone."""
    root = Path(platform.base_env["SBX_VOLUMES_DIR"])
    yield root
    with contextlib.suppress(OSError):
        root.rmdir()
