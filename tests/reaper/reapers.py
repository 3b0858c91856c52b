"""A reaper process the tests run beside the platform's own, and a way to wait for its sweeps."""

from __future__ import annotations

from dataclasses import dataclass

from sbx_devstack.processes import ServiceProcess

from tests.support.platform import metric
from tests.support.waiting import wait_for


@dataclass
class QuickReaper:
    """A reaper process and its ops port."""

    process: ServiceProcess
    port: int

    async def sweeps_done(self) -> int:
        return int(await metric(self.port, "reaper_sweep_seconds_count") or 0)

    async def swept(self, times: int = 3) -> None:
        """Wait until it has finished `times` more sweeps: the first may have begun before the
        call, the others began after it. A check that nothing happened waits for sweeps rather
        than for a time, which a busy machine can use up before the reaper even ran."""
        target = await self.sweeps_done() + times

        async def done() -> bool:
            return await self.sweeps_done() >= target

        await wait_for(done, timeout=60, interval=0.1, what=f"{times} more reaper sweeps")
