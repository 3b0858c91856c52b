"""`sbx-api`: run the API service with uvicorn."""

from __future__ import annotations

import uvicorn
from sbx_common.logging import configure_logging
from sbx_common.telemetry import setup_telemetry

from sbx_api.app import create_app
from sbx_api.config import ApiSettings


def main() -> None:
    settings = ApiSettings()
    configure_logging("api", settings.log_level)
    setup_telemetry("api")
    app = create_app(settings)
    proxies = settings.trusted_proxies.strip()
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        ws_ping_interval=20,
        # Client messages past this size close the socket (1009) before they are buffered whole.
        ws_max_size=settings.ws_max_message_bytes,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )
