"""The lifecycle verbs: what each command does to a sandbox's container, and what is recorded.

Every verb converges on its goal from whatever state it finds, so a command can be repeated (a
redelivery after a crash, a duplicate) without harm: create finds the container `sbx-<id>` and
carries on, start on a running container and stop on a stopped one change nothing.

Which commands are carried out (the caller holds the sandbox's lock):
- a sandbox already `destroyed` or `expired`: nothing, ever again;
- the reaper's TTL command (`reason == "ttl"`: destroy, stop or pause, as the sandbox's
  `onExpire` says): only while the sandbox's `expires_at` has passed and no TTL stop or pause
  has spent it (a PATCH may have moved it since the reaper sent the command); a destroy ends
  `expired`, a stop or pause `stopped` / `paused` with reason "ttl" and spends that
  `expires_at` (`sandbox_runtime.ttl_applied_for`), so the sandbox shows no `expiresAt`;
- the reaper's `fail` (a sandbox stuck unsettled): the sandbox becomes `failed` with the
  command's reason, unless it settled meanwhile;
- an API command: only if it is the sandbox's latest (`sandboxes.last_command_id`). An older
  command is stale and does nothing: the latest command is (or will be) delivered too, and it
  converges from whatever state the older ones left, so skipping them never loses the user's
  last wish, while carrying them out could undo it (a late create after a destroy);
- the latest command already settled (`sandbox_runtime.last_command_id` is its id and the status
  is settled): a duplicate; its settled event is published again under the same event id, so
  JetStream drops it unless the first publication was lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NoReturn

import docker.errors
from sbx_common import labels
from sbx_common.codes import HOST_LOST, CommandReason
from sbx_common.logging import forget_secrets, redact_text
from sbx_common.messages import SandboxCommand
from sbx_common.status import SETTLED, TERMINAL, Status, Verb
from sbx_common.timeutil import utcnow

from sbx_orchestrator.agent.pool import AgentPool
from sbx_orchestrator.config import OrchestratorSettings
from sbx_orchestrator.engine.containers import (
    ContainerSpec,
    ContainerState,
    container_spec,
    read_endpoints,
    read_state,
)
from sbx_orchestrator.engine.docker_engine import DockerEngine
from sbx_orchestrator.errors import SandboxFailed
from sbx_orchestrator.messaging.event_publisher import EventPublisher
from sbx_orchestrator.network_guard import NetworkGuard
from sbx_orchestrator.network_holders import Holder, NetworkHolders, joined_holder
from sbx_orchestrator.repository import Repository, RuntimeState, SandboxRecord
from sbx_orchestrator.secrets import SecretOpener
from sbx_orchestrator.storage import Storage

logger = logging.getLogger(__name__)

# The status recorded while a verb is under way, and the one it settles in when all goes well.
UNDER_WAY = {
    Verb.CREATE: Status.STARTING,
    Verb.START: Status.STARTING,
    Verb.RESTART: Status.RESTARTING,
    Verb.STOP: Status.STOPPING,
    Verb.DESTROY: Status.DESTROYING,
    Verb.PAUSE: Status.PAUSING,
    Verb.RESUME: Status.RESUMING,
}
GOAL = {
    Verb.CREATE: Status.RUNNING,
    Verb.START: Status.RUNNING,
    Verb.RESTART: Status.RUNNING,
    Verb.STOP: Status.STOPPED,
    Verb.DESTROY: Status.DESTROYED,
    Verb.PAUSE: Status.PAUSED,
    Verb.RESUME: Status.RUNNING,
}
# A container that finished this long before the orchestrator lost the engine's event stream
# ended by itself, not with the engine (the stream breaks first: dockerd closes its API, then
# stops the containers).
ENGINE_LOSS_MARGIN = 5.0
# Recorded statuses whose container must be there, running or frozen.
ALIVE = frozenset({Status.RUNNING, Status.PAUSED})
# The verbs the reaper sends when a TTL runs out (the sandbox's `onExpire`).
EXPIRY_VERBS = frozenset({Verb.DESTROY, Verb.STOP, Verb.PAUSE})
# A destroy records `stopped_at` when the sandbox was last recorded in one of these (its
# container may have been running or frozen when it was removed).
MAYBE_RUNNING = frozenset(
    {
        Status.STARTING,
        Status.RUNNING,
        Status.RESTARTING,
        Status.STOPPING,
        Status.PAUSING,
        Status.PAUSED,
        Status.RESUMING,
        Status.DESTROYING,
    }
)

# Docker start errors that no retry can fix (reported as the sandbox's failure reason).
_PERMANENT_START_ERRORS = {
    "port is already allocated": "a host port of the environment is already in use",
    "address already in use": "a host port of the environment is already in use",
    "executable file not found": "the command of the environment was not found in the image",
    "no such file or directory": "the command of the environment was not found in the image",
    "permission denied": "the command of the environment could not be executed",
}
HEALTH_POLL_MAX = 0.5
DISK_QUOTA_EXCEEDED = "disk quota exceeded"
SUPERSEDED_CHECK = 1.0  # seconds between looks for a newer command while waiting for health


class Outcome(StrEnum):
    """How handling a command ended (the `outcome` label of the command metrics)."""

    DONE = "done"
    FAILED = "failed"
    STALE = "stale"
    DUPLICATE = "duplicate"
    SUPERSEDED = "superseded"
    TERMINAL = "terminal"
    MISSING = "missing"


class Superseded(Exception):
    """A newer command was recorded while this one waited: it takes over from here."""


class ContainerExited(Exception):
    """The container stopped by itself while a verb waited for it to run."""

    def __init__(self, state: ContainerState) -> None:
        super().__init__(state.exit_reason)
        self.state = state


@dataclass
class Job:
    """A command being carried out on a sandbox."""

    sandbox: SandboxRecord
    command: SandboxCommand
    # The under-way record (row and event), written while Docker acts: every later record of
    # the job waits for it first, so the events keep their order.
    underway: asyncio.Task[None] | None = None

    @property
    def expiring(self) -> bool:
        return is_expiry(self.command)

    @property
    def name(self) -> str:
        return labels.container_name(self.sandbox.id)


def is_expiry(command: SandboxCommand) -> bool:
    return command.verb in EXPIRY_VERBS and command.reason == CommandReason.TTL


def exit_outcome(state: ContainerState) -> tuple[Status, str | None, dict[str, Any]]:
    """A container that ended by itself: exit 0 is `stopped`, anything else `failed`."""
    data = {"exitCode": state.exit_code}
    if state.exit_code == 0:
        return Status.STOPPED, None, data
    return Status.FAILED, state.exit_reason, data


def finished_at(info: dict[str, Any]) -> float | None:
    """Docker's `State.FinishedAt` as epoch seconds (None when it never finished)."""
    raw = str((info.get("State") or {}).get("FinishedAt") or "")
    if not raw or raw.startswith("0001-"):
        return None
    head, _, fraction = raw.rstrip("Z").partition(".")
    try:
        moment = datetime.fromisoformat(f"{head}.{(fraction + '000000')[:6]}+00:00")
    except ValueError:
        return None
    return moment.timestamp()


def _docker_message(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)[:300]


class Lifecycle:
    def __init__(
        self,
        settings: OrchestratorSettings,
        repository: Repository,
        engine: DockerEngine,
        events: EventPublisher,
        secrets: SecretOpener,
        *,
        guard: NetworkGuard,
        agents: AgentPool | None = None,
        holders: NetworkHolders | None = None,
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.engine = engine
        self.events = events
        self.secrets = secrets
        self.guard = guard
        self.agents = agents
        self.holders = holders if holders is not None and holders.enabled else None
        # Told when a sandbox's container stopped, restarted or went (its processes ended).
        # (sandbox id, whether it was destroyed)
        self.on_sandbox_down: list[Callable[[uuid.UUID, bool], Awaitable[None]]] = []
        self.storage = Storage(settings, repository, engine)

    # --- commands ---

    async def handle(self, command: SandboxCommand) -> Outcome:
        """Carry out one command (see the module docstring for which ones are carried out)."""
        outcome = await self._carry_out(command)
        if command.verb is Verb.SNAPSHOT and command.snapshot_id is not None:
            await self.events.snapshot_note(command.snapshot_id)
        return outcome

    async def _carry_out(self, command: SandboxCommand) -> Outcome:
        if command.verb is Verb.VOLUME_DELETE:
            await self.storage.delete_volume(command)
            return Outcome.DONE
        if command.verb is Verb.SNAPSHOT_DELETE:
            await self.storage.delete_snapshot(command)
            return Outcome.DONE
        sandbox = await self.repository.load_sandbox(command.sandbox_id)
        if sandbox is None or sandbox.owner_id != command.owner_id:
            if sandbox is None and command.verb is Verb.DESTROY:
                await self.engine.remove(labels.container_name(command.sandbox_id))
                await self._remove_holder(command.sandbox_id)
            logger.warning("command for an unknown sandbox", extra={"sandboxId": str(command.sandbox_id)})
            return Outcome.MISSING
        runtime = sandbox.runtime
        if runtime is not None and runtime.status in TERMINAL:
            if command.verb is Verb.SNAPSHOT and command.snapshot_id is not None:
                await self.storage.snapshot(command, sandbox)  # no container: the snapshot fails
            if runtime.last_command_id == command.id:
                await self._announce_again(sandbox, runtime, command)
            return Outcome.TERMINAL
        if sandbox.lost:
            outcome = await self.settle_lost(sandbox, command)
            if command.verb is Verb.SNAPSHOT and command.snapshot_id is not None:
                await self.storage.snapshot(command, sandbox)  # no container: the snapshot fails
            return outcome
        if command.verb is Verb.FAIL:
            return await self._fail_unsettled(sandbox, command)
        if command.verb is Verb.NETWORK:
            return await self._apply_network(sandbox)
        if command.verb is Verb.SNAPSHOT:
            return Outcome.DONE if await self.storage.snapshot(command, sandbox) else Outcome.FAILED
        if is_expiry(command):
            if not sandbox.ttl_due:
                return Outcome.STALE
            if command.verb is not Verb.DESTROY and not await self._ttl_has_work(sandbox, command):
                return Outcome.DONE
        else:
            if command.id != sandbox.last_command_id:
                logger.info(
                    "stale command skipped",
                    extra={"sandboxId": str(sandbox.id), "commandId": str(command.id), "verb": command.verb},
                )
                return Outcome.STALE
            if runtime is not None and runtime.last_command_id == command.id and runtime.status in SETTLED:
                await self._announce_again(sandbox, runtime, command)
                return Outcome.DUPLICATE

        job = Job(sandbox, command)
        # Recorded while Docker acts rather than before it, so neither waits for the other. A
        # failed record fails the attempt (retried: the verbs converge).
        job.underway = asyncio.create_task(self._write_record(job, UNDER_WAY[command.verb]))
        try:
            return await self._carry_out_job(job)
        finally:
            await self._underway_done(job)

    async def _underway_done(self, job: Job) -> None:
        pending, job.underway = job.underway, None
        if pending is not None:
            await pending

    async def _carry_out_job(self, job: Job) -> Outcome:
        sandbox, command = job.sandbox, job.command
        try:
            if command.verb is Verb.DESTROY:
                await self._destroy(job)
            elif command.verb is Verb.STOP:
                await self._stop(job)
            elif command.verb is Verb.PAUSE:
                await self._pause(job)
            elif command.verb is Verb.RESUME:
                await self._resume(job)
            else:
                await self._run(job, restart=command.verb is Verb.RESTART)
        except Superseded:
            logger.info(
                "command superseded", extra={"sandboxId": str(sandbox.id), "commandId": str(command.id)}
            )
            return Outcome.SUPERSEDED
        except ContainerExited as exited:
            await self.guard.release(sandbox.id)
            status, reason, data = exit_outcome(exited.state)
            await self._record(
                job,
                status,
                reason=reason,
                data=data,
                exit_code=exited.state.exit_code,
                stopped_at=utcnow(),
                endpoints=[],
                address=None,
            )
            return Outcome.FAILED if status is Status.FAILED else Outcome.DONE
        except SandboxFailed as failure:
            logger.info("sandbox failed", extra={"sandboxId": str(sandbox.id), "reason": failure.reason})
            await self._record(
                job,
                Status.FAILED,
                reason=failure.reason,
                data=failure.data,
                exit_code=failure.exit_code,
                address=None,
            )
            return Outcome.FAILED
        return Outcome.DONE

    async def give_up(self, command: SandboxCommand, deliveries: int) -> None:
        """After a command's last delivery failed: the sandbox becomes `failed` (if still current)."""
        if command.verb is Verb.SNAPSHOT and command.snapshot_id is not None:
            await self.repository.write_snapshot(
                command.snapshot_id, "failed", reason=f"snapshot failed after {deliveries} attempts"
            )
            await self.events.snapshot_note(command.snapshot_id)
            return
        if command.verb in (Verb.SNAPSHOT_DELETE, Verb.VOLUME_DELETE):
            return  # the reaper's clean-up tries again
        # Only what is needed to record it: the full sandbox may be what keeps failing to load.
        state = await self.repository.load_state(command.sandbox_id)
        if state is None or state.owner_id != command.owner_id or command.verb is Verb.NETWORK:
            return  # a policy not applied leaves the sandbox as it was (and the refresh retries)
        if state.runtime is not None and state.runtime.status in TERMINAL:
            return
        if not is_expiry(command) and command.id != state.last_command_id:
            return
        reason = f"{command.verb.value} failed after {deliveries} attempts"
        fields: dict[str, Any] = {"status": Status.FAILED, "status_reason": reason}
        if not is_expiry(command):
            fields["last_command_id"] = command.id
        await self.repository.write_runtime(command.sandbox_id, **fields)
        await self.events.sandbox_event(
            sandbox_id=command.sandbox_id,
            owner_id=state.owner_id,
            status=Status.FAILED,
            reason=reason,
            command_id=command.id,
        )

    async def _apply_network(self, sandbox: SandboxRecord) -> Outcome:
        """The `network` command: the policy recorded now, applied to the running container (a
        sandbox that does not run gets it when it starts)."""
        info = await self.engine.inspect(labels.container_name(sandbox.id))
        if info is not None and read_state(info).running:
            await self.guard.apply(sandbox.id, info, sandbox.network)
        return Outcome.DONE

    async def settle_lost(self, sandbox: SandboxRecord, command: SandboxCommand | None = None) -> Outcome:
        """A sandbox the platform gave up on while its host was lost (the reaper reported it
        `failed`, `host lost`): it is never run again, whatever command arrives once the host is
        back. Its container and firewall rules go; its runtime row then says what the user sees
        (`failed` / `host lost`, or `destroyed` / `expired` once destroyed), so the view and the
        row agree. The caller holds the sandbox's lock."""
        if self.agents is not None:
            await self.agents.forget(sandbox.id)
        await self.engine.remove(labels.container_name(sandbox.id))
        await self._remove_holder(sandbox.id)
        destroyed = (command is not None and command.verb is Verb.DESTROY) or (
            sandbox.last_command_verb is Verb.DESTROY
        )
        for callback in self.on_sandbox_down:
            try:
                await callback(sandbox.id, destroyed)
            except Exception:
                logger.exception("sandbox-down callback failed", extra={"sandboxId": str(sandbox.id)})
        await self.guard.release(sandbox.id)
        columns: dict[str, Any] = {
            "endpoints": [],
            "address": None,
            "last_command_id": sandbox.last_command_id,
        }
        if not destroyed:
            await self.repository.write_runtime(
                sandbox.id, status=Status.FAILED, status_reason=HOST_LOST, **columns
            )
            logger.info("lost sandbox removed", extra={"sandboxId": str(sandbox.id)})
            return Outcome.FAILED
        expired = command is not None and is_expiry(command)
        status = Status.EXPIRED if expired else Status.DESTROYED
        reason = CommandReason.TTL if expired else HOST_LOST
        await self.repository.write_runtime(
            sandbox.id, status=status, status_reason=reason, destroyed_at=utcnow(), **columns
        )
        await self.events.sandbox_event(
            sandbox_id=sandbox.id,
            owner_id=sandbox.owner_id,
            status=status,
            reason=reason,
            command_id=command.id if command is not None else None,
        )
        forget_secrets(str(sandbox.id))
        return Outcome.DONE

    async def _fail_unsettled(self, sandbox: SandboxRecord, command: SandboxCommand) -> Outcome:
        """The reaper's `fail`: a sandbox still unsettled becomes `failed` with its reason.

        It concludes the API's latest command (recorded as taken up), so the sandbox shows
        `failed` rather than that command's transitional status. A sandbox that settled
        meanwhile is left alone.
        """
        runtime = sandbox.runtime
        if (
            runtime is not None
            and runtime.last_command_id == sandbox.last_command_id
            and runtime.status in SETTLED
        ):
            return Outcome.STALE
        reason = command.reason or "stuck"
        await self.repository.write_runtime(
            sandbox.id, status=Status.FAILED, status_reason=reason, last_command_id=sandbox.last_command_id
        )
        await self.events.sandbox_event(
            sandbox_id=sandbox.id,
            owner_id=sandbox.owner_id,
            status=Status.FAILED,
            reason=reason,
            command_id=command.id,
        )
        return Outcome.FAILED

    async def _record(
        self,
        job: Job,
        status: Status,
        *,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
        **columns: Any,
    ) -> None:
        """Write the runtime row, then publish the event (readers of the event see the row),
        after the job's under-way record."""
        await self._underway_done(job)
        await self._write_record(job, status, reason=reason, data=data, **columns)

    async def _write_record(
        self,
        job: Job,
        status: Status,
        *,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
        **columns: Any,
    ) -> None:
        fields: dict[str, Any] = {"status": status, "status_reason": reason, **columns}
        if not job.expiring:
            fields["last_command_id"] = job.command.id
        elif job.command.verb is not Verb.DESTROY and status in SETTLED:
            fields["ttl_applied_for"] = job.sandbox.expires_at
            if status is GOAL[job.command.verb]:
                fields["status_reason"] = reason = CommandReason.TTL
        await self.repository.write_runtime(job.sandbox.id, **fields)
        await self.events.sandbox_event(
            sandbox_id=job.sandbox.id,
            owner_id=job.sandbox.owner_id,
            status=status,
            reason=reason,
            command_id=job.command.id,
            data=data,
        )

    async def _announce_again(
        self, sandbox: SandboxRecord, runtime: RuntimeState, command: SandboxCommand
    ) -> None:
        """Publish a settled command's event again (same id: JetStream drops it if it was sent)."""
        if runtime.status is not GOAL[command.verb] and runtime.status is not Status.FAILED:
            return  # the status changed since (e.g. the container exited): that has its own event
        data: dict[str, Any] = {}
        if runtime.status is Status.RUNNING:
            data["endpoints"] = runtime.endpoints
        elif runtime.exit_code is not None:
            data["exitCode"] = runtime.exit_code
        await self.events.sandbox_event(
            sandbox_id=sandbox.id,
            owner_id=sandbox.owner_id,
            status=runtime.status,
            reason=runtime.status_reason,
            command_id=command.id,
            data=data,
        )

    # --- verbs ---

    async def _run(self, job: Job, *, restart: bool) -> None:
        """create, start, restart: the container exists, runs, and is healthy if it can tell."""
        if job.command.verb is Verb.CREATE and self.holders is not None:
            with self.holders.creating():
                await self._run_container(job, restart=restart)
        else:
            await self._run_container(job, restart=restart)

    async def _run_container(self, job: Job, *, restart: bool) -> None:
        await self.storage.prepare_volumes(job.sandbox)
        spec: asyncio.Task[ContainerSpec] | None = None
        # A create's container joins a ready network holder's namespace where it can (not with
        # published ports: Docker publishes them on the namespace's owner).
        holder: Holder | None = None
        if job.command.verb is Verb.CREATE and self.holders is not None and not job.sandbox.ports:
            holder = self.holders.take()
        if job.command.verb is Verb.CREATE and job.sandbox.snapshot_id is None:
            # A create mostly finds no container: what making one needs (the image, the
            # network, the secrets, the agent's volume) is fetched while Docker is asked.
            spec = asyncio.create_task(self._container_spec(job.sandbox, holder))
        # A holder's address is known before the container runs: its rules are loaded while
        # Docker makes and starts it, off the create's path.
        guarding: asyncio.Task[None] | None = None
        try:
            info = await self.engine.inspect(job.name)
            if info is None:
                taken, holder = holder, None  # the sandbox's now, or removed
                if taken is not None:
                    guarding = asyncio.create_task(
                        self.guard.guard_address(job.sandbox.id, taken.address, job.sandbox.network)
                    )
                info = await self._create_container(job.sandbox, spec, taken)
                if taken is not None and guarding is not None and joined_holder(info) not in (None, taken.id):
                    # Made meanwhile by a concurrent attempt, with another holder: that one's
                    # address is guarded once it runs, as any container's.
                    await guarding
                    guarding = None
                if job.sandbox.snapshot_id is not None:
                    await self.storage.release_hidden_snapshot(job.sandbox.snapshot_id)
            state = read_state(info)
            started: dict[str, Any] | None = None
            if restart and state.running:
                await self._forget_agent(job)
                await self.engine.restart(state.id, self.settings.stop_timeout)
                await self._sandbox_down(job)
            elif not state.running:
                await self._start(state.id)
            else:
                started = info  # already running (a warm pool's container): nothing changed since
        except BaseException:
            if guarding is not None:
                await asyncio.gather(guarding, return_exceptions=True)
                self.guard.release_soon(job.sandbox.id)
            raise
        finally:
            if spec is not None and not spec.done():
                spec.cancel()  # a warm pool's container was found: nothing to make
                await asyncio.gather(spec, return_exceptions=True)
            if holder is not None and self.holders is not None:
                self.holders.give_back(holder)  # no container was made: nothing joined it
        # Guarded as soon as it runs (until then the platform's chain drops whatever it sends).
        if started is None:
            started = await self.engine.inspect(state.id)
        if guarding is not None:
            await guarding
        elif started is not None and read_state(started).running:
            await self.guard.apply(job.sandbox.id, started, job.sandbox.network)
        info = await self._wait_until_ready(job, state.id, started)
        endpoints = read_endpoints(info, self.settings.public_host)
        await self._record(
            job,
            Status.RUNNING,
            data={"endpoints": endpoints},
            container_id=state.id,
            endpoints=endpoints,
            address=await self.guard.address_of(info),
            started_at=utcnow(),
            stopped_at=None,
            exit_code=None,
        )

    async def _ttl_has_work(self, sandbox: SandboxRecord, command: SandboxCommand) -> bool:
        """A TTL stop or pause of a sandbox whose container is not running (stopped, failed, or
        already paused for a pause) changes nothing: the TTL is only spent, with no event."""
        info = await self.engine.inspect(labels.container_name(sandbox.id))
        state = read_state(info) if info is not None else None
        if state is not None and (state.running or (state.paused and command.verb is Verb.STOP)):
            return True
        runtime = sandbox.runtime
        if runtime is not None:
            await self.repository.write_runtime(
                sandbox.id, status=runtime.status, ttl_applied_for=sandbox.expires_at
            )
        return False

    async def _container_state(self, job: Job) -> ContainerState:
        info = await self.engine.inspect(job.name)
        if info is None:
            raise SandboxFailed("the container was removed outside the platform")
        return read_state(info)

    async def _pause(self, job: Job) -> None:
        """Freeze the container (Docker's pause: the cgroup freezer). Its memory, files and
        network stay as they are; exec and terminals answer `NOT_RUNNING` until it resumes.

        The freeze is asked for at once, with no inspect first: Docker refuses to pause a
        container that is not running or already paused (and to unpause one that is not paused,
        with a 500), and only then is the container inspected (already in the goal state: done;
        ended: recorded as such)."""
        await self._forget_agent(job)
        try:
            await self.engine.pause(job.name)
        except docker.errors.NotFound:
            raise SandboxFailed("the container was removed outside the platform") from None
        except docker.errors.APIError:
            state = await self._container_state(job)
            if state.running:  # refused for another reason: the attempt fails (retried)
                raise
            if not state.paused:
                raise ContainerExited(state) from None
        await self._record(job, Status.PAUSED)

    async def _resume(self, job: Job) -> None:
        """Thaw a paused container; it runs on from where it was frozen. Like `_pause`, Docker
        is asked at once and the container inspected only when it refuses. Freezing changes no
        port, so the endpoints recorded when it last started still hold."""
        try:
            await self.engine.unpause(job.name)
        except docker.errors.NotFound:
            raise SandboxFailed("the container was removed outside the platform") from None
        except docker.errors.APIError:
            state = await self._container_state(job)
            if state.paused:  # refused for another reason: the attempt fails (retried)
                raise
            if not state.running:
                raise ContainerExited(state) from None
        runtime = job.sandbox.runtime
        endpoints = runtime.endpoints if runtime is not None else []
        await self._record(job, Status.RUNNING, data={"endpoints": endpoints}, endpoints=endpoints)

    async def _remove_holder(self, sandbox_id: uuid.UUID) -> None:
        """The network holder of a sandbox whose container was removed (none: nothing)."""
        if self.holders is not None:
            await self.holders.remove_of(sandbox_id)

    async def _forget_agent(self, job: Job) -> None:
        """Close the sandbox's agent session: it would hang on a frozen container, and a
        stopped or removed one ends it anyway."""
        if self.agents is not None:
            await self.agents.forget(job.sandbox.id)

    async def _sandbox_down(self, job: Job, destroyed: bool = False) -> None:
        for callback in self.on_sandbox_down:
            try:
                await callback(job.sandbox.id, destroyed)
            except Exception:
                logger.exception("sandbox-down callback failed", extra={"sandboxId": str(job.sandbox.id)})

    async def _remove(self, job: Job) -> None:
        try:
            await self.engine.remove(job.name)
        except docker.errors.APIError:
            # An engine that will not remove a frozen container: thawed, it can be killed.
            info = await self.engine.inspect(job.name)
            if info is None or not read_state(info).paused:
                raise
            await self.engine.unpause(str(info["Id"]))
            await self.engine.remove(job.name)

    async def _stop(self, job: Job) -> None:
        await self._forget_agent(job)
        info = await self.engine.inspect(job.name)
        if info is not None and read_state(info).paused:
            # A frozen process cannot take the SIGTERM of a graceful stop: thaw it first.
            await self.engine.unpause(str(info["Id"]))
            info = await self.engine.inspect(job.name)
        if info is not None and read_state(info).running:
            await self.engine.stop(str(info["Id"]), self.settings.stop_timeout)
        await self._sandbox_down(job)
        await self.storage.refresh_usage(job.sandbox)
        await self._record(
            job, Status.STOPPED, endpoints=[], address=None, stopped_at=utcnow(), exit_code=None
        )
        self.guard.release_soon(job.sandbox.id)  # see `_destroy`

    async def _destroy(self, job: Job) -> None:
        """Remove the container (forced: running or frozen, it is killed) with no inspect
        first, record it destroyed, then take its firewall rules away (as a stop does).

        The rules go after the record, not beside the remove: an iptables removal committed
        while Docker tears the container's network down made that teardown about 10 ms slower
        (`bench.breakdown` against a raw remove in the same run), and after the record it is off
        the answer's path. Nothing can use them meanwhile: the address is Docker's to hand out
        again only once the container is removed, and a sandbox given it is guarded in place of
        this one whichever comes first: `Firewall.guard` replaces a stale entry for its address,
        and a load of the whole set replaces a jump the kernel still holds for it."""
        await self._forget_agent(job)
        await self._remove(job)
        await self._sandbox_down(job, destroyed=True)
        await self.storage.refresh_usage(job.sandbox)
        columns: dict[str, Any] = {"endpoints": [], "address": None, "destroyed_at": utcnow()}
        runtime = job.sandbox.runtime
        if runtime is not None and runtime.status in MAYBE_RUNNING:
            columns["stopped_at"] = columns["destroyed_at"]
        if job.expiring:
            await self._record(job, Status.EXPIRED, reason=CommandReason.TTL, **columns)
        else:
            await self._record(job, Status.DESTROYED, **columns)
        forget_secrets(str(job.sandbox.id))
        holder = self.holders.remove_of(job.sandbox.id) if self.holders is not None else None
        self.guard.release_soon(job.sandbox.id, first=holder)

    # --- steps ---

    async def pooled_container(self, sandbox: SandboxRecord) -> dict[str, Any]:
        """A warm pool's container for a reserved sandbox id, made as `create` makes one (see
        warm_pool.py); the create command that claims it finds it running in `_run`."""
        return await self._create_container(sandbox)

    async def _container_spec(self, sandbox: SandboxRecord, holder: Holder | None = None) -> ContainerSpec:
        """What Docker is asked to make for the sandbox: its prerequisites (the snapshot's image,
        the network, the secrets, the agent's volume) are fetched side by side. Whether an
        environment's image is here is not asked: the create says so (`_make`)."""
        if not sandbox.image:
            raise SandboxFailed("the environment version of the sandbox does not exist")
        if sandbox.snapshot_id is not None:
            await self.storage.wait_for_snapshot(sandbox.snapshot_id)
        network = asyncio.create_task(self.guard.ensure_network())
        sealed = asyncio.create_task(self.repository.load_secrets(sandbox.environment_id))
        binary = asyncio.create_task(self.agents.volume()) if self.agents is not None else None
        features = asyncio.create_task(self.engine.features())
        everything = (network, sealed, binary, features)
        tasks: list[asyncio.Task[Any]] = [t for t in everything if t is not None]
        try:
            await asyncio.wait(tasks)
        finally:
            for task in tasks:
                task.cancel()  # only those still under way (this call was cancelled)
        for task in tasks:  # every one has ended: the first failure, in this order, counts
            task.result()
        secrets = self.secrets.open_all(sandbox.id, sandbox.environment_id, sealed.result())
        agent = binary.result() if binary is not None else None
        mount = agent.mount() if agent is not None else None
        holder_id = holder.id if holder is not None else None
        return container_spec(sandbox, secrets, self.settings, features.result(), mount, holder_id=holder_id)

    async def _create_container(
        self,
        sandbox: SandboxRecord,
        prepared: Awaitable[ContainerSpec] | None = None,
        holder: Holder | None = None,
    ) -> dict[str, Any]:
        """Make the sandbox's container. With `holder` it joins that network holder's namespace,
        and the holder is the sandbox's from then on (removed when this call made none)."""
        made = False
        try:
            spec = await (prepared if prepared is not None else self._container_spec(sandbox, holder))
            try:
                container_id = await self._make(sandbox, spec)
            except docker.errors.ImageNotFound:
                raise SandboxFailed("image not found") from None
            except docker.errors.APIError as exc:
                if exc.status_code == 409:  # created meanwhile (a concurrent attempt): use it
                    existing = await self.engine.inspect(spec.name)
                    if existing is not None:
                        return existing
                if exc.status_code is not None and 400 <= exc.status_code < 500:
                    reason = f"the container could not be created: {_docker_message(exc)}"
                    raise SandboxFailed(reason) from None
                raise
            made = True
        finally:
            if holder is not None and self.holders is not None:
                if made:
                    self.holders.joined(holder, sandbox.id)
                else:
                    await asyncio.shield(self.holders.discard(holder))
        # What `_run` reads of a container just made (it is started and inspected next): no
        # inspect round trip for it.
        return {"Id": container_id, "State": {"Status": "created", "Running": False}}

    async def _make(self, sandbox: SandboxRecord, spec: ContainerSpec) -> str:
        """Create the container; an environment's image that is not here yet is pulled once
        (one that cannot be had is final), then the create is asked again."""
        try:
            return await self.engine.create(spec)
        except docker.errors.ImageNotFound:
            if sandbox.snapshot_id is not None:
                raise  # a snapshot's image is never pulled
        await self._ensure_image(sandbox.image)
        return await self.engine.create(spec)

    async def _ensure_image(self, image: str) -> None:
        """Use the local image, else pull it once; an image that cannot be had is final."""
        if await self.engine.has_image(image):
            return
        try:
            await self.engine.pull(image)
        except Exception as exc:
            logger.info("image pull failed", extra={"image": image, "error": redact_text(str(exc))[:300]})
            raise SandboxFailed("image not found") from None
        if not await self.engine.has_image(image):
            raise SandboxFailed("image not found")

    async def _start(self, container_id: str) -> None:
        try:
            await self.engine.start(container_id)
        except docker.errors.APIError as exc:
            if await self._holder_revived(container_id):
                await self._start_once(container_id)
                return
            self._start_refused(exc)

    async def _start_once(self, container_id: str) -> None:
        try:
            await self.engine.start(container_id)
        except docker.errors.APIError as exc:
            self._start_refused(exc)

    async def _holder_revived(self, container_id: str) -> bool:
        """A container that joins a network holder the engine stopped (it went down) starts
        only once the holder runs again: True when it was started now. A holder removed outside
        the platform leaves the sandbox with no network to join: that is final."""
        if self.holders is None:
            return False
        info = await self.engine.inspect(container_id)
        holder_id = joined_holder(info) if info is not None else None
        if holder_id is None:
            return False
        holder = await self.engine.inspect(holder_id)
        if holder is None:
            raise SandboxFailed("the sandbox's network was removed outside the platform")
        if read_state(holder).running:
            return False
        return await self.holders.revive(holder_id)

    @staticmethod
    def _start_refused(exc: docker.errors.APIError) -> NoReturn:
        """Raise what a refused start means: the sandbox's failure, or the error (retried)."""
        message = _docker_message(exc)
        for marker, reason in _PERMANENT_START_ERRORS.items():
            if marker in message.lower():
                raise SandboxFailed(reason) from None
        if exc.status_code is not None and 400 <= exc.status_code < 500 and exc.status_code != 404:
            raise SandboxFailed(f"the container could not be started: {message}") from None
        raise exc

    async def _wait_until_ready(
        self, job: Job, container_id: str, first: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Inspect until the container runs (and, with a HEALTHCHECK, is healthy).

        A health check may take long: once a newer command is recorded for the sandbox (a stop or
        destroy the user sent meanwhile) or its TTL has run out (the reaper's destroy is on its
        way), waiting stops and that command takes over. `first`: an inspect of the container
        the caller has just taken, used for the first look.
        """
        deadline = time.monotonic() + self.settings.health_timeout
        next_check = time.monotonic() + SUPERSEDED_CHECK
        delay = 0.05
        while True:
            if time.monotonic() > next_check:
                next_check = time.monotonic() + SUPERSEDED_CHECK
                if await self.repository.is_superseded(job.sandbox.id, job.command.id):
                    raise Superseded
            # The caller's inspect, taken just before, stands for the first one.
            info, first = (
                (first, None) if first is not None else (await self.engine.inspect(container_id), None)
            )
            if info is None:
                raise SandboxFailed("the container was removed while starting")
            state = read_state(info)
            if not state.running:
                raise ContainerExited(state)
            if state.health in (None, "healthy"):
                return info
            if state.health == "unhealthy" or time.monotonic() > deadline:
                await self.engine.stop(container_id, grace=1)
                raise SandboxFailed("unhealthy")
            await asyncio.sleep(delay)
            delay = min(delay * 2, HEALTH_POLL_MAX)

    # --- what Docker reports ---

    async def recover(self, sandbox_id: uuid.UUID, engine_lost_at: float) -> bool:
        """After the engine came back: a sandbox recorded `running` or `paused` whose container
        the engine stopped when it went down (finished after `engine_lost_at`, epoch seconds) is
        started again, and paused again if it was paused (the freezer and the processes' memory
        do not survive an engine restart; the files do). The caller holds the lock. False when
        this does not apply or the container can never start: `observe` then records it."""
        sandbox = await self.repository.load_sandbox(sandbox_id)
        runtime = sandbox.runtime if sandbox is not None else None
        if sandbox is None or runtime is None or runtime.status not in ALIVE:
            return True
        info = await self.engine.inspect(labels.container_name(sandbox_id))
        if info is None:
            return False
        container = read_state(info)
        if container.running or container.paused:
            return True
        finished = finished_at(info)
        if finished is None or finished < engine_lost_at - ENGINE_LOSS_MARGIN:
            return False
        try:
            await self._start(container.id)
        except SandboxFailed as exc:
            logger.info("sandbox not restored", extra={"sandboxId": str(sandbox_id), "error": exc.reason})
            return False
        except Exception as exc:
            # The engine is not (yet, or any more) able to: left as recorded for the next
            # reconcile, which follows the next time the event stream comes back.
            logger.warning("sandbox restore failed", extra={"sandboxId": str(sandbox_id), "error": repr(exc)})
            return True
        started = await self.engine.inspect(container.id)
        if started is None or not read_state(started).running:
            return False
        address = await self.guard.apply(sandbox_id, started, sandbox.network)
        if runtime.status is Status.PAUSED:
            await self.engine.pause(container.id)
        endpoints = read_endpoints(started, self.settings.public_host)
        await self.repository.write_runtime(
            sandbox_id,
            status=runtime.status,
            status_reason=runtime.status_reason,
            container_id=container.id,
            endpoints=endpoints,
            address=address,
            started_at=utcnow(),
        )
        await self.events.sandbox_event(
            sandbox_id=sandbox_id,
            owner_id=sandbox.owner_id,
            status=runtime.status,
            reason=runtime.status_reason,
            data={"endpoints": endpoints, "restored": True},
        )
        logger.info("sandbox restored after an engine restart", extra={"sandboxId": str(sandbox_id)})
        return True

    async def observe(self, sandbox_id: uuid.UUID) -> None:
        """Record a running (or paused) sandbox whose container ended by itself or is gone (the
        caller holds the lock).

        Exits the orchestrator caused (stop, restart, destroy) are recognised by the recorded
        status: those commands hold the sandbox's lock and settle before this runs.
        """
        state = await self.repository.load_state(sandbox_id)
        if state is None:
            # No sandbox (yet): a warm pool's container, guarded while it waits (warm_pool.py).
            # Once it ended its rules go, so its address, handed to another container, never
            # lends them.
            ended = await self.engine.inspect(labels.container_name(sandbox_id))
            if ended is None or not read_state(ended).running:
                await self.guard.release(sandbox_id)
            return
        if state.runtime is None or state.runtime.status not in ALIVE:
            return
        info = await self.engine.inspect(labels.container_name(sandbox_id))
        status: Status = Status.FAILED
        reason: str | None = "the container was removed outside the platform"
        data: dict[str, Any] = {}
        exit_code: int | None = None
        if info is not None:
            container = read_state(info)
            if container.running or container.paused:
                return
            status, reason, data = exit_outcome(container)
            exit_code = container.exit_code
        await self.guard.release(sandbox_id)
        await self.repository.write_runtime(
            sandbox_id,
            status=status,
            status_reason=reason,
            exit_code=exit_code,
            stopped_at=utcnow(),
            endpoints=[],
            address=None,
        )
        await self.events.sandbox_event(
            sandbox_id=sandbox_id, owner_id=state.owner_id, status=status, reason=reason, data=data
        )

    async def stop_over_quota(self, sandbox_id: uuid.UUID, container_id: str) -> bool:
        """Stop a running sandbox whose writable layer outgrew its `disk` (caller holds the lock).

        The container is killed at once (a grace period would let it write on), and the sandbox
        is recorded `stopped` with the reason `disk quota exceeded`, like any other stop: the
        event is published and its exit is not reported again by the container watcher.
        """
        state = await self.repository.load_state(sandbox_id)
        if state is None or state.runtime is None or state.runtime.status is not Status.RUNNING:
            return False
        if state.runtime.container_id not in (None, container_id):
            return False
        # The address goes first: once the container stops, the bridge may hand it to another.
        await self.repository.write_runtime(sandbox_id, status=Status.RUNNING, address=None)
        await self.engine.stop(container_id, grace=0)
        await self.guard.release(sandbox_id)
        await self.repository.write_runtime(
            sandbox_id,
            status=Status.STOPPED,
            status_reason=DISK_QUOTA_EXCEEDED,
            stopped_at=utcnow(),
            endpoints=[],
            address=None,
            exit_code=None,
        )
        await self.events.sandbox_event(
            sandbox_id=sandbox_id, owner_id=state.owner_id, status=Status.STOPPED, reason=DISK_QUOTA_EXCEEDED
        )
        return True
