"""NATS users of the test servers: every service's user, with passwords made for this session,
and `sbx-tests`, the tests' own user (anything, anywhere), which no deployment has."""

from __future__ import annotations

import functools
from pathlib import Path

from nats.aio.client import Client as NatsClient
from pydantic import SecretStr
from sbx_common import natsconn
from sbx_common.nats_permissions import NatsUser
from sbx_devstack.nats_auth import NatsCredentials
from sbx_devstack.servers import EmbeddedNats

TESTS_USER = NatsUser(
    name="sbx-tests",
    publish=(">",),
    subscribe=(">",),
    description="the tests' own connection: taps, faults, set-up; in no deployment",
)

CREDENTIALS = NatsCredentials.generate([TESTS_USER])


@functools.cache
def authorization() -> str:
    """The server's authorization block (hashed once a session)."""
    return CREDENTIALS.authorization()


def nats_server(data_dir: Path, port: int | None = None) -> EmbeddedNats:
    """An embedded NATS (not started yet) that knows every service's user and the tests'."""
    return EmbeddedNats(data_dir, port=port, config=authorization())


def service_env(service: str) -> dict[str, str]:
    """SBX_NATS_USER / SBX_NATS_PASSWORD of one service (api, orchestrator, ..., migrate)."""
    return CREDENTIALS.service_env(service)


def password(user: str) -> SecretStr:
    return SecretStr(CREDENTIALS.passwords[user])


async def connect_as(url: str, user: str, name: str) -> NatsClient:
    """A connection as `user` (a service's user, or the tests')."""
    return await natsconn.connect(url, name, user=user, password=password(user))


async def admin_connect(url: str, name: str) -> NatsClient:
    """A connection of the tests' own, allowed everything."""
    return await connect_as(url, TESTS_USER.name, name)
