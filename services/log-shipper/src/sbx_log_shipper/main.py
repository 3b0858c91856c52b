"""`sbx-log-shipper`: run the log-shipper service."""

from __future__ import annotations

from sbx_common.worker import run_worker

from sbx_log_shipper.config import LogShipperSettings
from sbx_log_shipper.shipper import LogShipper


def main() -> None:
    settings = LogShipperSettings()
    run_worker("log-shipper", settings, LogShipper(settings))
