"""The message bus: every NATS client logs in as a user, and each service's user may publish and
subscribe only where its work needs (sbx_common.nats_permissions), against the session's real
nats-server. The rest of the suite runs with every service on its own user, so the platform
working end to end is checked there."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from pydantic import SecretStr
from sbx_common import natsconn
from sbx_common.nats_permissions import SERVICE_USERS, deployment_config, inbox_prefix
from sbx_common.settings import CommonSettings
from sbx_devstack.servers import EmbeddedNats, nats_server_binary

from tests.support.nats_auth import CREDENTIALS, authorization, password
from tests.support.platform import Platform
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _embedded_nats_only(request: pytest.FixtureRequest) -> None:
    # The testcontainers NATS runs without the authorization block.
    if request.config.getoption("--infra") != "embedded":
        pytest.skip("NATS users are configured on the embedded server only")


class Client:
    """A raw connection as one user that keeps the server's errors (permission violations come
    back as asynchronous errors on a connection that stays open)."""

    def __init__(self) -> None:
        self.nc = NatsClient()
        self.errors: list[str] = []

    async def connect(self, url: str, user: str) -> Client:
        async def on_error(exc: Exception) -> None:
            self.errors.append(str(exc))

        await self.nc.connect(
            servers=[url],
            user=user,
            password=password(user).get_secret_value(),
            inbox_prefix=inbox_prefix(user),
            error_cb=on_error,
            allow_reconnect=False,
        )
        return self

    async def violation(self, subject: str) -> str:
        """Wait for the server's permissions violation naming `subject`."""

        async def seen() -> str | None:
            await self.nc.flush()
            # nats-py hands the server's `-ERR` text over lower-cased.
            wanted = subject.lower()
            return next((e for e in self.errors if "permissions violation" in e and wanted in e), None)

        return await wait_for(seen, timeout=10, what=f"a permissions violation for {subject}")


ConnectAs = Callable[[str], Awaitable[Client]]


@pytest.fixture
async def admin(nats_url: str, migrated: str) -> AsyncIterator[Client]:
    client = await Client().connect(nats_url, "sbx-tests")
    yield client
    await client.nc.close()


@pytest.fixture
async def connect_as(nats_url: str, migrated: str) -> AsyncIterator[ConnectAs]:
    opened: list[Client] = []

    async def connect(user: str) -> Client:
        client = await Client().connect(nats_url, user)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        await client.nc.close()


async def refused(url: str, **credentials: Any) -> str:
    nc = NatsClient()
    with pytest.raises((nats.errors.Error, OSError)) as caught:
        await nc.connect(
            servers=[url], allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5, **credentials
        )
    # A connect that raised leaves no connection behind (closing it again can hang after a
    # failed TLS handshake).
    return str(caught.value)


async def test_a_client_without_credentials_or_with_wrong_ones_is_refused(nats_url: str) -> None:
    await refused(nats_url)
    await refused(nats_url, user="sbx-api", password="not-the-password")
    # One service's password is no key to another service's user.
    await refused(nats_url, user="sbx-orchestrator", password=password("sbx-api").get_secret_value())
    # The right one is let in (so the refusals above are about the credentials).
    nc = await natsconn.connect(nats_url, "tests-auth", user="sbx-api", password=password("sbx-api"))
    assert nc.is_connected
    await nc.close()


DENIED_PUBLISH = [
    ("sbx-metrics-collector", "sbx.cmd.local.sandbox.create"),
    ("sbx-log-shipper", "sbx.cmd.local.sandbox.destroy"),
    ("sbx-api", f"sbx.evt.{uuid.uuid4()}.{uuid.uuid4()}.running"),  # forging an event
    ("sbx-reaper", "sbx.term.s1.out"),  # writing to someone's terminal
    ("sbx-log-shipper", "sbx.term.s1.in"),
    ("sbx-metrics-collector", "sbx.log.s1"),
    ("sbx-log-shipper", "_INBOX.sbx-api.forged"),  # answering a request it never received
    ("sbx-api", "$JS.API.CONSUMER.MSG.NEXT.SBX_CMD.orchestrator__commands"),  # taking commands
    ("sbx-api", "$JS.API.CONSUMER.DELETE.SBX_EVT.reaper__events"),
    ("sbx-metrics-collector", "$JS.API.STREAM.DELETE.SBX_CMD"),
    ("sbx-migrate", "sbx.cmd.local.sandbox.create"),
    ("sbx-webhooks", "sbx.cmd.local.sandbox.destroy"),  # it only reads events
    ("sbx-webhooks", f"sbx.evt.{uuid.uuid4()}.{uuid.uuid4()}.running"),
    ("sbx-webhooks", "$JS.API.CONSUMER.MSG.NEXT.SBX_EVT.reaper__events"),
    ("sbx-api", "$JS.API.CONSUMER.DELETE.SBX_EVT.webhooks__events"),
]


@pytest.mark.parametrize(("user", "subject"), DENIED_PUBLISH)
async def test_a_service_cannot_publish_where_it_has_no_business(
    connect_as: ConnectAs, admin: Client, user: str, subject: str
) -> None:
    received: list[Msg] = []
    # A payload of this test's own: services of the shared platform may publish on the same
    # subject with their rights (the orchestrator's own pulls of its commands), and the tap
    # hears those too; only this one must never arrive.
    forged = f'{{"forged": "{uuid.uuid4()}"}}'.encode()

    async def tap(msg: Msg) -> None:
        if msg.data == forged:
            received.append(msg)

    await admin.nc.subscribe(subject, cb=tap)
    await admin.nc.flush()
    client: Client = await connect_as(user)
    await client.nc.publish(subject, forged)
    message = await client.violation(subject)
    assert "for publish to" in message
    await admin.nc.flush()
    assert received == []


DENIED_SUBSCRIBE = [
    ("sbx-api", "sbx.rpc.local.exec"),  # only the orchestrator answers exec
    ("sbx-api", "sbx.rpc.*.terminal.open"),
    ("sbx-reaper", "sbx.rpc.*.exec"),
    ("sbx-log-shipper", "sbx.term.*.in"),  # terminal bytes: the API and orchestrator only
    ("sbx-log-shipper", "sbx.term.>"),
    ("sbx-metrics-collector", "sbx.term.*.out"),
    ("sbx-reaper", "sbx.term.*.ctl"),
    ("sbx-metrics-collector", "sbx.cmd.*.sandbox.*"),
    ("sbx-log-shipper", "_INBOX.sbx-api.>"),  # another service's replies
    ("sbx-reaper", "_INBOX.>"),
    ("sbx-api", ">"),
    ("sbx-webhooks", "sbx.term.*.out"),
]


@pytest.mark.parametrize(("user", "subject"), DENIED_SUBSCRIBE)
async def test_a_service_cannot_listen_where_it_has_no_business(
    connect_as: ConnectAs, admin: Client, user: str, subject: str
) -> None:
    client: Client = await connect_as(user)
    received: list[Msg] = []

    async def tap(msg: Msg) -> None:
        received.append(msg)

    await client.nc.subscribe(subject, cb=tap)
    message = await client.violation(subject)
    assert "for subscription to" in message
    concrete = subject.replace(">", "x.y").replace("*", "s1")
    await admin.nc.publish(concrete, b"{}")
    await admin.nc.flush()
    await client.nc.flush()
    assert received == []


async def test_what_a_service_needs_still_flows(connect_as: ConnectAs) -> None:
    """The same check lets allowed traffic through: API input reaches the orchestrator's
    terminal side, its output reaches the API, and a request is answered through
    allow_responses onto the asker's own inbox."""
    api: Client = await connect_as("sbx-api")
    orchestrator: Client = await connect_as("sbx-orchestrator")
    session = uuid.uuid4().hex
    to_orchestrator: asyncio.Queue[Msg] = asyncio.Queue()
    to_api: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_input(msg: Msg) -> None:
        await to_orchestrator.put(msg)

    async def on_output(msg: Msg) -> None:
        await to_api.put(msg)

    await orchestrator.nc.subscribe(f"sbx.term.{session}.in", cb=on_input)
    await orchestrator.nc.subscribe(f"sbx.term.{session}.ctl", cb=on_input)
    await api.nc.subscribe(f"sbx.term.{session}.out", cb=on_output)
    await orchestrator.nc.flush()
    await api.nc.flush()

    await api.nc.publish(f"sbx.term.{session}.in", b"ls\n")
    assert (await asyncio.wait_for(to_orchestrator.get(), 10)).data == b"ls\n"
    await orchestrator.nc.publish(f"sbx.term.{session}.out", b"file\n")
    assert (await asyncio.wait_for(to_api.get(), 10)).data == b"file\n"

    # A keepalive request on the control subject, answered by the orchestrator.
    asking = asyncio.create_task(api.nc.request(f"sbx.term.{session}.ctl", b"ping", timeout=10))
    request = await asyncio.wait_for(to_orchestrator.get(), 10)
    assert request.reply.startswith(inbox_prefix("sbx-api") + ".")
    await request.respond(b"pong")
    assert (await asking).data == b"pong"
    assert api.errors == []
    assert orchestrator.errors == []


async def test_no_password_on_a_command_line_in_a_log_or_in_the_server_config(
    platform: Platform, nats_server: EmbeddedNats
) -> None:
    passwords = list(CREDENTIALS.passwords.values())
    assert nats_server.process is not None
    pids = [nats_server.process.pid]
    pids += [p.process.pid for p in platform.processes.values() if p.process is not None]
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert not any(p in cmdline for p in passwords), pid
    # A refused login is logged by the server without what was tried.
    await refused(nats_server.url, user="sbx-api", password="attempted-secret-value")
    server_files = "".join(
        f.read_text(errors="replace") for f in nats_server.data_dir.glob("nats-server.*") if f.is_file()
    )
    assert "attempted-secret-value" not in server_files
    assert not any(p in server_files for p in passwords)
    assert server_files.count("$2b$") == len(CREDENTIALS.passwords)  # only hashes
    assert not any(p in platform.logs() for p in passwords)
    # Each service was given its own user only.
    for name, proc in platform.processes.items():
        assert proc.env["SBX_NATS_PASSWORD"] == CREDENTIALS.service_env(name)["SBX_NATS_PASSWORD"]
    assert "SBX_NATS_PASSWORD" not in platform.base_env


def test_the_checked_in_deployment_config_is_what_the_table_makes(tmp_path: Path) -> None:
    assert (ROOT / "infra" / "nats" / "auth.conf").read_text() == deployment_config()
    # nats-server accepts the compose configuration once every password is in its environment.
    config = (ROOT / "infra" / "nats" / "nats-server.conf").read_text()
    (tmp_path / "auth.conf").write_text(deployment_config())
    (tmp_path / "nats-server.conf").write_text(config.replace('"/data"', f'"{tmp_path}"'))
    env = {user.env_name: "a-password" for user in SERVICE_USERS.values()}
    result = subprocess.run(
        [nats_server_binary(), "-c", str(tmp_path / "nats-server.conf"), "-t"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    env.pop(SERVICE_USERS["sbx-reaper"].env_name)
    result = subprocess.run(
        [nats_server_binary(), "-c", str(tmp_path / "nats-server.conf"), "-t"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


async def test_tls_with_client_certificates(tmp_path: Path) -> None:
    """A server that demands TLS and a client certificate signed by its CA: a service with
    SBX_NATS_TLS_CA/_CERT/_KEY gets in; the same user without TLS does not."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("sbx test CA", ca_key, None, ca_key)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    _write(tmp_path / "ca", ca)
    _write(tmp_path / "server", _certificate("nats", server_key, ca, ca_key), server_key)
    _write(tmp_path / "client", _certificate("sbx-api", client_key, ca, ca_key), client_key)
    tls = (
        "tls {\n"
        f'  cert_file: "{tmp_path / "server.crt"}"\n'
        f'  key_file: "{tmp_path / "server.key"}"\n'
        f'  ca_file: "{tmp_path / "ca.crt"}"\n'
        "  verify: true\n"
        "}\n"
    )
    server = EmbeddedNats(tmp_path / "nats", config=authorization() + tls).start()
    try:
        settings = CommonSettings(
            nats_url=server.url,
            nats_user="sbx-api",
            nats_password=SecretStr(CREDENTIALS.passwords["sbx-api"]),
            nats_tls_ca=str(tmp_path / "ca.crt"),
            nats_tls_cert=str(tmp_path / "client.crt"),
            nats_tls_key=str(tmp_path / "client.key"),
        )
        nc = await natsconn.connect_with(settings, "tests-tls")
        try:
            assert nc.is_connected
            sub = await nc.subscribe("sbx.evt.>")
            await nc.flush()
        finally:
            await nc.close()
        assert sub is not None
        right = CREDENTIALS.passwords["sbx-api"]
        # The right password, but no certificate: refused in the handshake.
        await refused(
            server.url, user="sbx-api", password=right, tls=natsconn.tls_context(str(tmp_path / "ca.crt"))
        )
        # Plain NATS without a trusted CA: refused too.
        await refused(server.url, user="sbx-api", password=right)
    finally:
        server.stop()
