"""Fixtures of the reaper tests: a second, quick reaper beside the platform's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reaper.reapers import QuickReaper
from tests.support.platform import Platform, start_process

# A second reaper beside the platform's own: short grace and sweep interval so the tests do not
# wait for the defaults, and two reapers at once all the time, as a deployment may run them.
QUICK_REAPER_ENV = {
    "SBX_REAPER_SWEEP_INTERVAL_SECONDS": "0.5",
    "SBX_REAPER_ORPHAN_GRACE_SECONDS": "1",
}


@pytest.fixture(scope="module")
def quick_reaper(platform: Platform) -> Iterator[QuickReaper]:
    proc, port = start_process(
        "reaper", {**platform.base_env, **QUICK_REAPER_ENV}, platform.log_dir / "reaper-quick.log"
    )
    yield QuickReaper(proc, port)
    proc.stop()
