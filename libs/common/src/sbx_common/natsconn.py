"""Connecting to NATS with the settings every service wants."""

from __future__ import annotations

import json
import logging
import ssl
from typing import TYPE_CHECKING, Any

from nats.aio.client import DEFAULT_INBOX_PREFIX, Client
from nats.errors import Error as NatsError
from pydantic import SecretStr

from sbx_common import subjects
from sbx_common.nats_permissions import inbox_prefix

if TYPE_CHECKING:
    from sbx_common.settings import CommonSettings

logger = logging.getLogger(__name__)


def tls_context(ca: str, cert: str = "", key: str = "") -> ssl.SSLContext:
    """A client TLS context trusting `ca`, presenting `cert`/`key` when given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    if cert:
        context.load_cert_chain(cert, key or None)
    return context


async def connect_with(settings: CommonSettings, name: str) -> Client:
    """`connect` as the service's own NATS user, over TLS when a CA is set."""
    tls = (
        tls_context(settings.nats_tls_ca, settings.nats_tls_cert, settings.nats_tls_key)
        if settings.nats_tls_ca
        else None
    )
    return await connect(
        settings.nats_url, name, user=settings.nats_user, password=settings.nats_password, tls=tls
    )


def server_urls(url: str) -> list[str]:
    """The servers of `SBX_NATS_URL`: one URL, or several separated by commas (a cluster)."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ValueError("SBX_NATS_URL names no server")
    return servers


async def connect(
    url: str,
    name: str,
    *,
    user: str = "",
    password: SecretStr | None = None,
    tls: ssl.SSLContext | None = None,
) -> Client:
    """A connection that reconnects forever; as `user` (its replies on its own inbox) if given.

    `url` may name several servers of one cluster, comma separated: the client starts with any
    of them (in random order, so that services spread over the cluster), learns the others the
    cluster announces, and moves to another when its server goes away.

    The password goes to the server in the CONNECT message only; it is never logged.
    """
    nc = Client()

    async def on_error(exc: Exception) -> None:
        logger.warning("nats error", extra={"error": repr(exc)})

    async def on_disconnect() -> None:
        # nats-py calls this on an orderly close too; only a lost connection is worth a warning.
        if nc.is_closed:
            logger.debug("nats connection closed")
        else:
            logger.warning("nats disconnected")

    async def on_reconnect() -> None:
        logger.info("nats reconnected")

    await nc.connect(
        servers=server_urls(url),
        name=name,
        tls=tls,
        user=user or None,
        password=(password.get_secret_value() if password else "") if user else None,
        inbox_prefix=inbox_prefix(user) if user else DEFAULT_INBOX_PREFIX,
        max_reconnect_attempts=-1,  # keep trying forever: NATS restarts must not kill a service
        # The wait before trying a server again that was tried last; another server of the
        # cluster is tried at once. Half a second keeps a restarted single server's outage short.
        reconnect_time_wait=0.5,  # type: ignore[arg-type]  # annotated int, used as a float sleep
        dont_randomize=False,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )
    return nc


async def orchestrator_health(nc: Client, wait_seconds: float) -> dict[str, Any] | None:
    """An orchestrator's health answer (`docker`, and the engine's `runtimes` and `diskLimit`
    while it reaches Docker), or None when none answers."""
    if not nc.is_connected:
        return None
    try:
        reply = await nc.request(subjects.RPC_ORCHESTRATOR_HEALTH, b"{}", timeout=wait_seconds)
        answer = json.loads(reply.data)
    except (NatsError, TimeoutError, ValueError, AttributeError):
        return None
    return answer if isinstance(answer, dict) else None


async def orchestrator_reaches_docker(nc: Client, wait_seconds: float) -> bool:
    """Whether an orchestrator answers its health request and reports the Docker engine up."""
    answer = await orchestrator_health(nc, wait_seconds)
    return answer is not None and answer.get("docker") == "ok"


async def drain(nc: Client) -> None:
    """Drain the connection on the way out; when NATS is already gone (one Ctrl-C of `make run`
    stops every process at once, the server among them) close it instead: what was not flushed
    is lost either way, and the stop goes on."""
    try:
        await nc.drain()
    except NatsError as exc:
        logger.info("nats gone before the drain", extra={"error": repr(exc)})
        await nc.close()
