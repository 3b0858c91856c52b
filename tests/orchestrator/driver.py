"""Driving the orchestrator at its own contract, as the API would.

Rows are written with SQL exactly as the API writes them (users, environments and their
versions, secrets encrypted with the platform's master key, sandboxes with their latest command),
and commands are published to SBX_CMD with `Nats-Msg-Id` = command id. What the tests check is
what the orchestrator produces: the container Docker runs, `sandbox_view`, the events on SBX_EVT,
dead letters on SBX_DLQ, and exec replies.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import docker
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from sbx_common import subjects, topology
from sbx_common.crypto import SecretBox, secret_binding
from sbx_common.labels import SANDBOX_ID, container_name
from sbx_common.messages import DeadLetter, ExecRequest, ExecResult, SandboxCommand, SandboxEvent
from sbx_common.status import Verb
from sbx_common.timeutil import utcnow

from tests.support.docker import inspect_container, remove_containers_named
from tests.support.rows import insert_environment, insert_user
from tests.support.sandboxes import SETTLED
from tests.support.waiting import wait_for


@dataclass
class Sandbox:
    id: uuid.UUID
    owner_id: uuid.UUID
    environment_id: uuid.UUID
    create: SandboxCommand

    @property
    def container(self) -> str:
        return container_name(self.id)


@dataclass
class OrchestratorDriver:
    """Everything a test needs to talk to the orchestrator the way the API does."""

    pg: asyncpg.Connection
    nc: NatsClient
    master_key: str
    image: str
    docker: docker.DockerClient = field(default_factory=docker.from_env)
    sandboxes: list[uuid.UUID] = field(default_factory=list)

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    # --- rows, as the API writes them ---

    async def create_user(self) -> uuid.UUID:
        return await insert_user(self.pg, "orch")

    async def create_environment(
        self,
        owner_id: uuid.UUID,
        *,
        image: str | None = None,
        cpu: float = 0.5,
        memory: int = 128,
        ports: list[dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> uuid.UUID:
        return await insert_environment(
            self.pg,
            owner_id,
            image=image or self.image,
            cpu=cpu,
            memory=memory,
            ports=ports,
            env=env,
            command=command,
        )

    async def set_secret(self, environment_id: uuid.UUID, key: str, value: str) -> None:
        box = SecretBox.from_settings(self.master_key)
        sealed = box.seal(value, secret_binding(environment_id, key))
        await self.pg.execute(
            "INSERT INTO environment_secrets (environment_id, key, key_id, nonce, ciphertext)"
            " VALUES ($1, $2, $3, $4, $5)",
            environment_id,
            key,
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
        )

    async def create_sandbox(
        self, owner_id: uuid.UUID, environment_id: uuid.UUID, *, env: dict[str, str] | None = None
    ) -> Sandbox:
        """The sandbox row with its create command recorded (not yet published)."""
        sandbox_id = uuid.uuid4()
        command = SandboxCommand(verb=Verb.CREATE, sandbox_id=sandbox_id, owner_id=owner_id)
        version_env = await self.pg.fetchval(
            "SELECT env FROM environment_versions WHERE environment_id = $1 AND version = 1", environment_id
        )
        merged = {**version_env, **(env or {})}
        await self.pg.execute(
            "INSERT INTO sandboxes (id, owner_id, environment_id, environment_version, name, env,"
            " ttl_seconds, expires_at, last_command_id, last_command_verb)"
            " VALUES ($1, $2, $3, 1, $4, $5, 3600, $6, $7, 'create')",
            sandbox_id,
            owner_id,
            environment_id,
            f"sbx-{sandbox_id.hex[:8]}",
            merged,
            utcnow() + timedelta(hours=1),
            command.id,
        )
        self.sandboxes.append(sandbox_id)
        return Sandbox(sandbox_id, owner_id, environment_id, command)

    async def record_command(self, sandbox: Sandbox, verb: Verb) -> SandboxCommand:
        """A lifecycle call of the API: the sandbox's latest command becomes this one."""
        command = SandboxCommand(verb=verb, sandbox_id=sandbox.id, owner_id=sandbox.owner_id)
        await self.pg.execute(
            "UPDATE sandboxes SET last_command_id = $2, last_command_verb = $3, last_command_at = now()"
            " WHERE id = $1",
            sandbox.id,
            command.id,
            verb.value,
        )
        return command

    # --- commands ---

    async def publish(self, command: SandboxCommand, msg_id: str | None = None) -> None:
        await self.js.publish(
            subjects.command(command.host_id, command.verb.value),
            command.to_bytes(),
            stream=topology.STREAM_CMD,
            headers={"Nats-Msg-Id": msg_id or str(command.id)},
        )

    async def send(self, sandbox: Sandbox, verb: Verb) -> SandboxCommand:
        command = await self.record_command(sandbox, verb)
        await self.publish(command)
        return command

    async def start_sandbox(self, owner_id: uuid.UUID, environment_id: uuid.UUID, **kwargs: Any) -> Sandbox:
        sandbox = await self.create_sandbox(owner_id, environment_id, **kwargs)
        await self.publish(sandbox.create)
        return sandbox

    # --- what the orchestrator produced ---

    async def view(self, sandbox_id: uuid.UUID) -> dict[str, Any]:
        row = await self.pg.fetchrow("SELECT * FROM sandbox_view WHERE id = $1", sandbox_id)
        assert row is not None
        return dict(row)

    async def wait_settled(
        self, sandbox: Sandbox, expected: str | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Wait until the sandbox settles (in `expected`, when given) and return its view row."""

        async def settled() -> dict[str, Any] | None:
            row = await self.view(sandbox.id)
            done = row["status"] in SETTLED and (expected is None or row["status"] == expected)
            return row if done else None

        return await wait_for(settled, timeout, 0.05, f"sandbox {expected or 'settled'}")

    async def wait_applied(
        self, sandbox: Sandbox, command: SandboxCommand, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Wait until the orchestrator has taken up `command` and the sandbox has settled."""

        async def applied() -> dict[str, Any] | None:
            row = await self.view(sandbox.id)
            done = row["applied_command_id"] == command.id and row["status"] in SETTLED
            return row if done else None

        return await wait_for(applied, timeout, 0.05, f"command {command.verb} applied")

    async def drain_commands(self, timeout: float = 30.0) -> None:
        """Wait until every published command has been handled (nothing pending or unacked)."""

        async def drained() -> bool:
            info = await self.js.consumer_info(topology.STREAM_CMD, "orchestrator__commands")
            return bool(info.num_pending == 0 and info.num_ack_pending == 0)

        await wait_for(drained, timeout, 0.05, "no command pending")

    async def events(
        self, sandbox: Sandbox, *, until: str | None = None, timeout: float = 10.0
    ) -> list[SandboxEvent]:
        """The sandbox's events on SBX_EVT so far (waiting, with `until`, for that status)."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self._read_stream(
                topology.STREAM_EVT, subjects.events_of_sandbox(sandbox.owner_id, sandbox.id)
            )
            events = [SandboxEvent.model_validate_json(data) for data in found]
            if until is None or any(e.status == until for e in events) or time.monotonic() > deadline:
                return events
            await asyncio.sleep(0.05)

    async def dead_letters(self, verb: Verb) -> list[DeadLetter]:
        found = await self._read_stream(topology.STREAM_DLQ, subjects.dead_letter(verb.value))
        return [DeadLetter.model_validate_json(data) for data in found]

    async def _read_stream(self, stream: str, subject: str) -> list[bytes]:
        sub = await self.js.pull_subscribe(
            subject,
            stream=stream,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0),
        )
        found: list[bytes] = []
        try:
            # Every message on the subject when the consumer was made: the count tells when all
            # are read, rather than a fetch coming back empty in time.
            total = (await sub.consumer_info()).num_pending
            while len(found) < total:
                for message in await sub.fetch(min(100, total - len(found)), timeout=30):
                    found.append(message.data)
                    await message.ack()
        finally:
            await sub.unsubscribe()
        return found

    async def exec(self, sandbox: Sandbox, command: list[str], **kwargs: Any) -> ExecResult:
        owner_id = kwargs.pop("owner_id", sandbox.owner_id)
        request = ExecRequest(sandbox_id=sandbox.id, owner_id=owner_id, command=command, **kwargs)
        reply = await self.nc.request(
            subjects.rpc(subjects.DEFAULT_HOST, subjects.RPC_EXEC), request.to_bytes(), timeout=60
        )
        return ExecResult.model_validate_json(reply.data)

    # --- Docker ---

    def inspect(self, sandbox: Sandbox) -> dict[str, Any] | None:
        return inspect_container(self.docker, sandbox.container)

    def containers_of(self, sandbox: Sandbox) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.docker.api.containers(
            all=True, filters={"label": f"{SANDBOX_ID}={sandbox.id}"}
        )
        return found

    def cleanup(self) -> None:
        remove_containers_named(*(container_name(sandbox_id) for sandbox_id in self.sandboxes))
        self.docker.close()


def statuses(events: list[SandboxEvent]) -> list[str]:
    return [e.status.value for e in events]
