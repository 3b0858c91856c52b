"""`sbx-log-shipper`: run the log-shipper service."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient
from sbx_common.settings import CommonSettings
from sbx_common.worker import run_worker


class LogShipper:
    """Placeholder frame: connects, answers health; behaviour is added by its own modules."""

    async def start(self, nc: NatsClient) -> None:
        self.nc = nc

    async def stop(self) -> None:
        return None

    async def checks(self) -> dict[str, bool]:
        return {}


def main() -> None:
    run_worker("log-shipper", CommonSettings(), LogShipper())
