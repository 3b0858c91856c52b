"""The asyncio client: `AsyncClient`, its resources, and `AsyncSandbox` objects; the surface of
`Client`, awaited."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx
from pydantic import PrivateAttr

from sandbox_platform import _routes as routes
from sandbox_platform._async_streams import AsyncStream, AsyncTerminal, Opening, events, log_lines, wait_for
from sandbox_platform._core import ClientConfig, RetryPolicy
from sandbox_platform._files import AsyncSandboxFiles
from sandbox_platform._ports import proxy_error
from sandbox_platform._routes import NetworkLike, PortLike, VolumeMountLike
from sandbox_platform._transport import AsyncTransport
from sandbox_platform.client import DEFAULT_WAIT_TIMEOUT, UNSET
from sandbox_platform.errors import NotFoundError
from sandbox_platform.models import (
    TERMINAL_STATUSES,
    ApiKey,
    AuditEvent,
    CreatedApiKey,
    CreatedWebhook,
    Environment,
    EnvironmentVersion,
    Event,
    ExecResult,
    Health,
    Info,
    LogLine,
    Metrics,
    PreviewUrl,
    SandboxInfo,
    Secret,
    Snapshot,
    User,
    Volume,
    Webhook,
    WebhookDelivery,
    wanted_statuses,
)
from sandbox_platform.processes import AsyncProcesses


class AsyncClient:
    """An asyncio client of the Sandbox Platform API, with the methods of `Client` (awaited).

    `base_url` defaults to `SBX_API_URL` (else `http://127.0.0.1:3001`), the credential to
    `SBX_API_KEY`; `token` is a JWT from `auth.login`. Every call has a timeout (`timeout`
    seconds by default) and is retried when that is safe: at most `max_retries` times, with the
    backoff of `retry` (a `RetryPolicy`). `http_client` replaces the httpx client (proxies, TLS)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        token: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._config = ClientConfig.create(base_url, api_key, token, timeout, max_retries, retry=retry)
        self._transport = AsyncTransport(self._config, http_client)
        #: Signup, login and the current user.
        self.auth = AsyncAuth(self)
        #: API keys of the current user.
        self.api_keys = AsyncApiKeys(self)
        #: Environments: images, limits, ports, env and secrets, in immutable versions.
        self.environments = AsyncEnvironments(self)
        #: Sandboxes made from environments.
        self.sandboxes = AsyncSandboxes(self)
        #: Snapshots of sandboxes' filesystems.
        self.snapshots = AsyncSnapshots(self)
        #: Volumes: storage that outlives sandboxes.
        self.volumes = AsyncVolumes(self)
        #: The current user's audit trail.
        self.audit = AsyncAudit(self)
        #: Webhooks: the user's sandbox events POSTed, signed, to a URL.
        self.webhooks = AsyncWebhooks(self)

    @property
    def base_url(self) -> str:
        """The API's base URL."""
        return self._config.base_url

    @property
    def token(self) -> str | None:
        """The JWT kept from signup or login (None with an API key)."""
        return self._config.credentials.token

    @property
    def api_key(self) -> str | None:
        """The API key this client uses, if any."""
        return self._config.credentials.api_key

    async def info(self) -> Info:
        """What this installation offers (runtimes, features, limits); no credential needed."""
        return await self._transport.request(routes.info())

    async def health(self) -> Health:
        """The API's health (`status` `degraded` when a dependency is down); no credential needed."""
        return await self._transport.request(routes.health())

    def events(self, since: str | None = None) -> AsyncStream[Event]:
        """Live events of all the caller's sandboxes (from now on, or right after event `since`),
        resumed after a dropped connection."""
        return AsyncStream(events(self._transport, None, since))

    async def close(self) -> None:
        """Close the client's connections."""
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class _AsyncResource:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._transport = client._transport


class AsyncAuth(_AsyncResource):
    """Signup and login keep the token on the client, so the calls after them are authenticated."""

    async def signup(self, email: str, password: str) -> User:
        """Create an account (password 8-128 characters) and log in as it."""
        user, token = await self._transport.request(routes.signup(email, password))
        self._client._config.credentials.use_token(token)
        return user

    async def login(self, email: str, password: str) -> User:
        """Log in; the token is kept on the client (it replaces an API key given before)."""
        user, token = await self._transport.request(routes.login(email, password))
        self._client._config.credentials.use_token(token)
        return user

    async def me(self) -> User:
        """The user the credential belongs to."""
        return await self._transport.request(routes.me())

    async def change_password(self, current: str, new: str) -> User:
        """Change the password. Every token issued before is refused from then on; the client
        keeps using the new token the answer carries."""
        user, token = await self._transport.request(routes.change_password(current, new))
        self._client._config.credentials.use_token(token)
        return user

    async def logout(self) -> None:
        """Revoke the client's token: it is refused (401) from then on."""
        await self._transport.request(routes.logout())


class AsyncApiKeys(_AsyncResource):
    """API keys (`sk_...`): credentials for scripts, revocable one by one."""

    async def create(self, name: str, expires_in_days: int | None = None) -> CreatedApiKey:
        """A new key, expiring after `expires_in_days` (1-3650) when given; its `key` is shown
        only in this answer."""
        return await self._transport.request(routes.create_api_key(name, expires_in_days))

    def list(self, *, limit: int | None = None) -> AsyncIterator[ApiKey]:
        """Every key of the user (never the keys themselves), page after page (`async for`)."""
        return self._transport.iterate(routes.list_api_keys(limit))

    async def revoke(self, key_id: str) -> None:
        """Revoke a key: it is refused (401) from then on."""
        await self._transport.request(routes.revoke_api_key(key_id))


class AsyncWebhooks(_AsyncResource):
    """Webhooks: the user's sandbox events POSTed to a URL, signed with the webhook's secret."""

    async def create(
        self, url: str, events: Sequence[str] = ("sandbox.*",), *, description: str | None = None
    ) -> CreatedWebhook:
        """A new webhook for `events` (`sandbox.*` or types like `sandbox.running`); its `secret`
        is shown only in this answer."""
        return await self._transport.request(routes.create_webhook(url, events, description))

    def list(self, *, limit: int | None = None) -> AsyncIterator[Webhook]:
        """Every webhook of the user (never their secrets), page after page."""
        return self._transport.iterate(routes.list_webhooks(limit))

    async def delete(self, webhook_id: str) -> None:
        """Delete a webhook: nothing more is delivered to it."""
        await self._transport.request(routes.delete_webhook(webhook_id))

    def deliveries(self, webhook_id: str, *, limit: int | None = None) -> AsyncIterator[WebhookDelivery]:
        """The webhook's deliveries, oldest first, page after page."""
        return self._transport.iterate(routes.webhook_deliveries(webhook_id, limit))


class AsyncEnvironments(_AsyncResource):
    """Environments: what sandboxes are made from. Every update makes a new immutable version."""

    async def create(
        self,
        name: str,
        image: str,
        *,
        cpu: float | None = None,
        memory: int | None = None,
        ports: Sequence[PortLike] | None = None,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        network: NetworkLike | None = None,
        runtime: str | None = None,
        disk: int | None = None,
        warm_pool: int | None = None,
    ) -> Environment:
        """A new environment (version 1). `cpu` in cores, `memory` in MiB, `ports` as container
        ports (ints) or `Port(container=, host=)`, `command` overrides the image's, `network` a
        `NetworkPolicy` or `{"egress": ..., "allow": [...]}` (default: internet), `runtime` one of
        `info().runtimes` (`runc`, `gvisor`), `disk` MiB of writable filesystem, `warm_pool` (0-20)
        ready sandboxes kept waiting for creates without per-sandbox `env` or `volumes`."""
        fields = routes.environment_fields(image, cpu, memory, ports, env)
        fields.update(routes.runtime_fields(runtime, disk, warm_pool))
        if command is not None:
            fields["command"] = list(command)
        if network is not None:
            fields["network"] = routes.network_body(network)
        return await self._transport.request(routes.create_environment(name, fields))

    def list(self, *, limit: int | None = None) -> AsyncIterator[Environment]:
        """Every environment of the user, page after page (`async for`)."""
        return self._transport.iterate(routes.list_environments(limit))

    async def get(self, environment_id: str) -> Environment:
        """One environment at its current version."""
        return await self._transport.request(routes.get_environment(environment_id))

    async def update(
        self,
        environment_id: str,
        *,
        image: str | None = None,
        cpu: float | None = None,
        memory: int | None = None,
        ports: Sequence[PortLike] | None = None,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = UNSET,
        network: NetworkLike | None = None,
        runtime: str | None = None,
        disk: int | None = None,
        warm_pool: int | None = None,
    ) -> Environment:
        """A new version with the fields given (the others carried over); `command=None` clears
        the command. Sandboxes already made keep their version."""
        fields = routes.environment_fields(image, cpu, memory, ports, env)
        fields.update(routes.runtime_fields(runtime, disk, warm_pool))
        if command is not UNSET:
            fields["command"] = None if command is None else list(command)
        if network is not None:
            fields["network"] = routes.network_body(network)
        return await self._transport.request(routes.update_environment(environment_id, fields))

    async def delete(self, environment_id: str) -> None:
        """Delete an environment (`ConflictError` while sandboxes that are not destroyed use it)."""
        await self._transport.request(routes.delete_environment(environment_id))

    def versions(self, environment_id: str, *, limit: int | None = None) -> AsyncIterator[EnvironmentVersion]:
        """Every version of an environment, oldest first (`async for`)."""
        return self._transport.iterate(routes.environment_versions(environment_id, limit))

    async def set_secret(self, environment_id: str, key: str, value: str) -> Secret:
        """Set (or replace) a secret: an env variable of new sandboxes, stored encrypted, never shown."""
        return await self._transport.request(routes.set_secret(environment_id, key, value))

    async def delete_secret(self, environment_id: str, key: str) -> None:
        """Remove a secret (`NotFoundError` if there is none of that key)."""
        await self._transport.request(routes.delete_secret(environment_id, key))


async def _destroy_quietly(sandbox: AsyncSandbox) -> None:
    if sandbox.status in TERMINAL_STATUSES:
        return
    with contextlib.suppress(NotFoundError):
        await sandbox.destroy()


class AsyncSandboxes(_AsyncResource):
    """Sandboxes: containers made from an environment version, with a lifecycle and a TTL."""

    def create(
        self,
        environment_id: str | None = None,
        *,
        environment_version: int | None = None,
        snapshot_id: str | None = None,
        volumes: Sequence[VolumeMountLike] | None = None,
        name: str | None = None,
        ttl_seconds: int | None = None,
        env: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
        on_expire: str | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
    ) -> Opening[AsyncSandbox]:
        """A new sandbox; with `wait`, returned once it runs (or failed) or `timeout` passed.
        `on_expire` is what its TTL does: "destroy" (default), "stop" or "pause".

        `sandbox = await client.sandboxes.create(...)`, or `async with client.sandboxes.create(...)
        as sandbox:` to destroy it at the end of the block."""
        body = routes.sandbox_body(name, ttl_seconds, env, metadata)
        # From an environment, or (`snapshot_id`) from a snapshot's files.
        if environment_id is not None:
            body["environmentId"] = environment_id
        if snapshot_id is not None:
            body["snapshotId"] = snapshot_id
        if volumes:
            body["volumes"] = routes.volumes_body(volumes)
        if on_expire is not None:
            body["onExpire"] = on_expire
        if environment_version is not None:
            body["environmentVersion"] = environment_version
        call = routes.create_sandbox(body, timeout if wait else None)
        return Opening(lambda: self._settle(call, wait, timeout), _destroy_quietly)

    async def get(self, sandbox_id: str) -> AsyncSandbox:
        """One sandbox (also once destroyed)."""
        return AsyncSandbox.bind(self._client, await self._transport.request(routes.get_sandbox(sandbox_id)))

    async def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        environment_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[AsyncSandbox]:
        """Every sandbox of the user, newest first, page after page (`async for`); without
        `status`, destroyed and expired ones are left out. `metadata` keeps those with all the
        given entries."""
        call = routes.list_sandboxes(status, environment_id, metadata, limit)
        async for data in self._transport.iterate(call):
            yield AsyncSandbox.bind(self._client, data)

    async def _settle(self, call: Any, wait: bool, timeout: float) -> AsyncSandbox:
        started = time.monotonic()
        sandbox = AsyncSandbox.bind(self._client, await self._transport.request(call))
        if wait:
            await sandbox._follow_up(timeout - (time.monotonic() - started))
        return sandbox


class AsyncSnapshots(_AsyncResource):
    """Snapshots: sandboxes' filesystems kept as images (`AsyncSandbox.snapshot()` takes one)."""

    def list(self, *, sandbox_id: str | None = None, limit: int | None = None) -> AsyncIterator[Snapshot]:
        """Every snapshot of the user (of one sandbox with `sandbox_id`), newest first."""
        return self._transport.iterate(routes.list_snapshots(sandbox_id, limit))

    async def get(self, snapshot_id: str) -> Snapshot:
        """One snapshot."""
        return await self._transport.request(routes.get_snapshot(snapshot_id))

    async def delete(self, snapshot_id: str) -> None:
        """Delete a snapshot and its image (`ConflictError` while a sandbox made from it is not
        destroyed)."""
        await self._transport.request(routes.delete_snapshot(snapshot_id))


class AsyncVolumes(_AsyncResource):
    """Volumes: named storage that outlives sandboxes, mounted with `volumes=` on create."""

    async def create(self, name: str, *, size_mib: int | None = None) -> Volume:
        """A new volume of `size_mib` MiB (1-102400, default 1024), a hard limit inside sandboxes."""
        return await self._transport.request(routes.create_volume(name, size_mib))

    def list(self, *, limit: int | None = None) -> AsyncIterator[Volume]:
        """Every volume of the user, newest first."""
        return self._transport.iterate(routes.list_volumes(limit))

    async def get(self, volume_id: str) -> Volume:
        """One volume, with the bytes in use and the sandboxes that mount it."""
        return await self._transport.request(routes.get_volume(volume_id))

    async def delete(self, volume_id: str) -> None:
        """Delete a volume and its data (`ConflictError` while a sandbox that is not destroyed
        mounts it)."""
        await self._transport.request(routes.delete_volume(volume_id))


class AsyncAudit(_AsyncResource):
    """The user's audit trail: what was done with the account, refused attempts included."""

    def list(self, *, limit: int | None = None) -> AsyncIterator[AuditEvent]:
        """Every entry, newest first, page after page (`async for`)."""
        return self._transport.iterate(routes.list_audit(limit))


class AsyncSandbox(SandboxInfo):
    """A sandbox: its fields as attributes, and coroutines that act on it and refresh them."""

    _client: AsyncClient = PrivateAttr()

    @classmethod
    def bind(cls, client: AsyncClient, data: Mapping[str, Any]) -> AsyncSandbox:
        """A sandbox object from the API's data, acting through `client`."""
        sandbox = cls.model_validate(data)
        sandbox._client = client
        return sandbox

    @property
    def _transport(self) -> AsyncTransport:
        return self._client._transport

    async def _follow_up(self, remaining: float) -> None:
        # The API waits at most 300 s: a longer wait goes on by following events.
        if not self.settled and remaining > 0:
            await self.wait(timeout=remaining)

    async def _lifecycle(self, call: Any, wait: bool, timeout: float) -> AsyncSandbox:
        started = time.monotonic()
        self._assign(await self._transport.request(call))
        if wait:
            await self._follow_up(timeout - (time.monotonic() - started))
        return self

    async def refresh(self) -> AsyncSandbox:
        """Read the sandbox again; returns itself."""
        return self._assign(await self._transport.request(routes.get_sandbox(self.id)))

    async def wait(
        self, timeout: float = DEFAULT_WAIT_TIMEOUT, status: str | Sequence[str] | None = None
    ) -> AsyncSandbox:
        """Follow the sandbox's events until it has settled (or reached one of `status`) or
        `timeout` seconds passed; returns itself with its fields as they then are."""
        return self._assign(
            await wait_for(self._transport, self.id, timeout, wanted_statuses(status).__contains__)
        )

    async def start(self, wait: bool = True, timeout: float = DEFAULT_WAIT_TIMEOUT) -> AsyncSandbox:
        """Start a stopped sandbox (nothing happens on a running one)."""
        call = routes.sandbox_action(self.id, "start", timeout if wait else None)
        return await self._lifecycle(call, wait, timeout)

    async def stop(self, wait: bool = True, timeout: float = DEFAULT_WAIT_TIMEOUT) -> AsyncSandbox:
        """Stop the sandbox (nothing happens on a stopped one)."""
        call = routes.sandbox_action(self.id, "stop", timeout if wait else None)
        return await self._lifecycle(call, wait, timeout)

    async def restart(self, wait: bool = True, timeout: float = DEFAULT_WAIT_TIMEOUT) -> AsyncSandbox:
        """Restart a running or stopped sandbox."""
        call = routes.sandbox_action(self.id, "restart", timeout if wait else None)
        return await self._lifecycle(call, wait, timeout)

    async def pause(self, wait: bool = True, timeout: float = DEFAULT_WAIT_TIMEOUT) -> AsyncSandbox:
        """Pause a running sandbox: its processes are frozen, memory and files kept."""
        call = routes.sandbox_action(self.id, "pause", timeout if wait else None)
        return await self._lifecycle(call, wait, timeout)

    async def resume(self, wait: bool = True, timeout: float = DEFAULT_WAIT_TIMEOUT) -> AsyncSandbox:
        """Resume a paused sandbox: it runs on from where it was frozen."""
        call = routes.sandbox_action(self.id, "resume", timeout if wait else None)
        return await self._lifecycle(call, wait, timeout)

    async def update(
        self,
        *,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, str] | None = None,
        on_expire: str | None = None,
    ) -> AsyncSandbox:
        """Set a new TTL (counted from now), replace the metadata, or choose what the TTL does
        (`on_expire` "destroy", "stop" or "pause"). Returns itself."""
        body = routes.update_body(ttl_seconds, metadata, on_expire)
        return self._assign(await self._transport.request(routes.update_sandbox(self.id, body)))

    async def destroy(self, wait: bool = True, timeout: float = DEFAULT_WAIT_TIMEOUT) -> AsyncSandbox:
        """Destroy the sandbox: its container is removed; the record stays readable."""
        return await self._lifecycle(
            routes.destroy_sandbox(self.id, timeout if wait else None), wait, timeout
        )

    async def replicate(
        self,
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, str] | None = None,
        with_filesystem: bool = False,
        volumes: Sequence[VolumeMountLike] | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
    ) -> AsyncSandbox:
        """A new sandbox with this one's environment version and env (`env` merged over it);
        with `with_filesystem`, it starts with this sandbox's files as they are now."""
        body = routes.sandbox_body(name, ttl_seconds, env, metadata)
        if with_filesystem:
            body["withFilesystem"] = True
        if volumes:
            body["volumes"] = routes.volumes_body(volumes)
        call = routes.replicate_sandbox(self.id, body, timeout if wait else None)
        return await self._client.sandboxes._settle(call, wait, timeout)

    async def snapshot(
        self, name: str | None = None, *, wait: bool = False, timeout: float = DEFAULT_WAIT_TIMEOUT
    ) -> Snapshot:
        """Keep this sandbox's filesystem as it is now (a running sandbox is frozen only for
        the moment of the capture); the snapshot is `creating` until its image is made. With
        `wait=True` the call returns once it is `ready` or `failed` (or `timeout` passed)."""
        return await self._transport.request(routes.create_snapshot(self.id, name, timeout if wait else None))

    async def update_network(self, egress: str, allow: Sequence[str] | None = None) -> AsyncSandbox:
        """Change what the sandbox may reach (`egress` "internet", "none" or "allowlist" with
        `allow` CIDRs and hostnames); a running sandbox follows within a second. Returns itself."""
        body = routes.policy_body(egress, allow)
        return self._assign(await self._transport.request(routes.update_sandbox_network(self.id, body)))

    async def exec(
        self,
        command: str | Sequence[str],
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
    ) -> ExecResult:
        """Run a command and wait for it: a string runs through `sh -c`, a list as is.
        `timeout` (seconds, the API's default 30) ends it with `timed_out`."""
        return await self._transport.request(routes.exec_command(self.id, command, timeout, env, workdir))

    async def logs(self, tail: int = 100, since: int | None = None) -> list[LogLine]:
        """Stored log lines, oldest first: the newest `tail`, or the first `tail` after seq `since`."""
        return await self._transport.request(routes.sandbox_logs(self.id, tail, since))

    def stream_logs(self, since: int | None = None, tail: int = 100) -> AsyncStream[LogLine]:
        """Log lines as they are printed (`async for`): first the newest `tail` (or every line
        after seq `since`), then live ones. A dropped connection is resumed where it was, with
        no line lost or repeated; the stream ends when the sandbox is destroyed."""
        return AsyncStream(log_lines(self._transport, self.id, since, tail))

    def events(self, since: str | None = None) -> AsyncStream[Event]:
        """The sandbox's events (`async for`): its retained history then live ones (or those
        after event `since`), resumed after a dropped connection."""
        return AsyncStream(events(self._transport, self.id, since))

    @property
    def processes(self) -> AsyncProcesses:
        """Background processes: `start`, `list`, `get` (see `sandbox_platform.processes`)."""
        return AsyncProcesses(self._transport, self.id)

    async def metrics(self) -> Metrics:
        """The latest resource sample (`NotRunningError` unless running)."""
        return await self._transport.request(routes.sandbox_metrics(self.id))

    @property
    def files(self) -> AsyncSandboxFiles:
        """The sandbox's files (while it runs, is paused or is stopped)."""
        return AsyncSandboxFiles(self._transport, self.id)

    async def get_preview_url(self, port: int, expires_in_seconds: int | None = None) -> PreviewUrl:
        """A signed link to `port` that a browser opens with no other credential, until it
        expires (`expires_in_seconds`, 60 to 604800; the API's default 3600) or the sandbox is
        destroyed (`NotRunningError` unless running)."""
        return await self._transport.request(routes.create_preview_url(self.id, port, expires_in_seconds))

    def port_url(self, port: int, path: str = "/") -> str:
        """The API's address of `path` on `port` of the sandbox (send the client's credentials)."""
        return self._client._config.url(routes.port_path(self.id, port, path))

    async def port_request(
        self,
        port: int,
        method: str = "GET",
        path: str = "/",
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """An HTTP request to the sandbox's server on `port`, through the API: the server's answer
        as it is (any status). The platform's own refusals raise typed errors
        (`NotRunningError`, `UpstreamUnavailableError` when nothing listens, ...)."""
        config = self._client._config
        response = await self._transport.http.request(
            method,
            self.port_url(port, path),
            params=dict(params) if params is not None else None,
            headers={**config.headers, **config.credentials.headers(), **(headers or {})},
            content=content,
            json=json,
            timeout=timeout if timeout is not None else config.timeout,
        )
        error = proxy_error(response)
        if error is not None:
            raise error
        return response

    def terminal(self, cols: int = 80, rows: int = 24) -> Opening[AsyncTerminal]:
        """An interactive shell on a PTY of `cols` x `rows` (`NotRunningError` unless running):
        `await sandbox.terminal()`, or `async with sandbox.terminal() as term:`."""
        return Opening(
            lambda: AsyncTerminal.open(self._client._config, self.id, cols, rows), AsyncTerminal.close
        )

    async def __aenter__(self) -> AsyncSandbox:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await _destroy_quietly(self)
