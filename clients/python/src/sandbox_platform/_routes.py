"""Every HTTP route of the API as a `Call`: its method, path, body, parsing and retry rule.

The sync and async clients run these same descriptions, so a route is written once.
Sandbox routes answer raw dicts: each client binds them to its own `Sandbox` class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from sandbox_platform._core import SERVER_WAIT_MARGIN, Call, Retry, server_wait
from sandbox_platform.models import (
    ApiKey,
    AuditEvent,
    CreatedApiKey,
    CreatedWebhook,
    Environment,
    EnvironmentVersion,
    ExecResult,
    FileEntry,
    Health,
    Info,
    LogLine,
    Metrics,
    NetworkPolicy,
    Port,
    PreviewUrl,
    ProcessInfo,
    ProcessOutput,
    Secret,
    Snapshot,
    User,
    Volume,
    VolumeMount,
    Webhook,
    WebhookDelivery,
)

M = TypeVar("M", bound=BaseModel)

#: Lifecycle verbs with a `POST /sandboxes/:id/<verb>` route.
ACTIONS = ("start", "stop", "restart")
#: Default of an exec's own timeout on the server (seconds).
EXEC_DEFAULT_TIMEOUT = 30.0

PortLike = Port | int | Mapping[str, int]
VolumeMountLike = VolumeMount | Mapping[str, Any]
NetworkLike = NetworkPolicy | Mapping[str, Any]


def _model(cls: type[M]) -> Callable[[Any], M]:
    return cls.model_validate


def _dict(data: Any) -> dict[str, Any]:
    return dict(data)


def _none(_data: Any) -> None:
    return None


def _id(value: str) -> str:
    """A path segment: ids and keys are quoted so that no value can change the route."""
    return quote(str(value), safe="")


def _auth(data: Any) -> tuple[User, str]:
    return User.model_validate(data["user"]), str(data["token"])


def signup(email: str, password: str) -> Call[tuple[User, str]]:
    return Call("POST", "/auth/signup", _auth, body={"email": email, "password": password}, retry=Retry.ONCE)


def login(email: str, password: str) -> Call[tuple[User, str]]:
    return Call("POST", "/auth/login", _auth, body={"email": email, "password": password}, retry=Retry.ONCE)


def me() -> Call[User]:
    return Call("GET", "/auth/me", _model(User))


def change_password(current_password: str, new_password: str) -> Call[tuple[User, str]]:
    body = {"currentPassword": current_password, "newPassword": new_password}
    return Call("POST", "/auth/password", _auth, body=body, retry=Retry.ONCE)


def logout() -> Call[None]:
    return Call("POST", "/auth/logout", _none, retry=Retry.ONCE)


def create_api_key(name: str, expires_in_days: int | None = None) -> Call[CreatedApiKey]:
    body: dict[str, Any] = {"name": name}
    if expires_in_days is not None:
        body["expiresInDays"] = expires_in_days
    return Call("POST", "/api-keys", _model(CreatedApiKey), body=body, retry=Retry.ONCE)


def list_api_keys(limit: int | None) -> Call[ApiKey]:
    return Call("GET", "/api-keys", _model(ApiKey), params={"limit": limit})


def revoke_api_key(key_id: str) -> Call[None]:
    return Call("DELETE", f"/api-keys/{_id(key_id)}", _none, retry=Retry.ONCE)


def create_webhook(url: str, events: Sequence[str], description: str | None) -> Call[CreatedWebhook]:
    body: dict[str, Any] = {"url": url, "events": list(events)}
    if description is not None:
        body["description"] = description
    # Not retried: a retry after a lost answer would make a second webhook.
    return Call("POST", "/webhooks", _model(CreatedWebhook), body=body)


def list_webhooks(limit: int | None) -> Call[Webhook]:
    return Call("GET", "/webhooks", _model(Webhook), params={"limit": limit})


def delete_webhook(webhook_id: str) -> Call[None]:
    return Call("DELETE", f"/webhooks/{_id(webhook_id)}", _none, retry=Retry.ONCE)


def webhook_deliveries(webhook_id: str, limit: int | None) -> Call[WebhookDelivery]:
    return Call(
        "GET", f"/webhooks/{_id(webhook_id)}/deliveries", _model(WebhookDelivery), params={"limit": limit}
    )


def ports_body(ports: Sequence[PortLike]) -> list[dict[str, int]]:
    """Ports as the API takes them: a bare int is a container port with a host port chosen per sandbox."""
    out: list[dict[str, int]] = []
    for port in ports:
        if isinstance(port, int):
            out.append({"container": port})
        elif isinstance(port, Port):
            out.append(port.model_dump(exclude_none=True))
        else:
            out.append(dict(port))
    return out


def environment_fields(
    image: str | None,
    cpu: float | None,
    memory: int | None,
    ports: Sequence[PortLike] | None,
    env: Mapping[str, str] | None,
) -> dict[str, Any]:
    """The definition fields that were given, in the API's names."""
    body: dict[str, Any] = {}
    if image is not None:
        body["image"] = image
    if cpu is not None:
        body["cpu"] = cpu
    if memory is not None:
        body["memory"] = memory
    if ports is not None:
        body["ports"] = ports_body(ports)
    if env is not None:
        body["env"] = dict(env)
    return body


def network_body(network: NetworkLike) -> dict[str, Any]:
    """A network policy in the API's form (`{"egress", "allow"}`)."""
    if isinstance(network, NetworkPolicy):
        return {"egress": network.egress, "allow": list(network.allow)}
    return dict(network)


def policy_body(egress: str, allow: Sequence[str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"egress": egress}
    if allow is not None:
        body["allow"] = list(allow)
    return body


def create_environment(name: str, fields: Mapping[str, Any]) -> Call[Environment]:
    return Call("POST", "/environments", _model(Environment), body={"name": name, **fields}, retry=Retry.ONCE)


def list_environments(limit: int | None) -> Call[Environment]:
    return Call("GET", "/environments", _model(Environment), params={"limit": limit})


def get_environment(environment_id: str) -> Call[Environment]:
    return Call("GET", f"/environments/{_id(environment_id)}", _model(Environment))


def update_environment(environment_id: str, fields: Mapping[str, Any]) -> Call[Environment]:
    return Call(
        "PUT",
        f"/environments/{_id(environment_id)}",
        _model(Environment),
        body=dict(fields),
        retry=Retry.ONCE,
    )


def delete_environment(environment_id: str) -> Call[None]:
    return Call("DELETE", f"/environments/{_id(environment_id)}", _none, retry=Retry.ONCE)


def environment_versions(environment_id: str, limit: int | None) -> Call[EnvironmentVersion]:
    return Call(
        "GET",
        f"/environments/{_id(environment_id)}/versions",
        _model(EnvironmentVersion),
        params={"limit": limit},
    )


def set_secret(environment_id: str, key: str, value: str) -> Call[Secret]:
    # Setting a key again replaces it: repeating the call is harmless.
    return Call(
        "POST",
        f"/environments/{_id(environment_id)}/secrets",
        _model(Secret),
        body={"key": key, "value": value},
    )


def delete_secret(environment_id: str, key: str) -> Call[None]:
    return Call("DELETE", f"/environments/{_id(environment_id)}/secrets/{_id(key)}", _none, retry=Retry.ONCE)


def sandbox_body(
    name: str | None,
    ttl_seconds: int | None,
    env: Mapping[str, str] | None,
    metadata: Mapping[str, str] | None,
) -> dict[str, Any]:
    """The optional fields of a create or replicate body, in the API's names."""
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if ttl_seconds is not None:
        body["ttlSeconds"] = ttl_seconds
    if env:
        body["env"] = dict(env)
    if metadata:
        body["metadata"] = dict(metadata)
    return body


def volumes_body(volumes: Sequence[VolumeMountLike]) -> list[dict[str, Any]]:
    """Volume mounts as the API takes them (`{"volumeId", "mountPath", "readOnly"}`)."""
    out: list[dict[str, Any]] = []
    for mount in volumes:
        if isinstance(mount, VolumeMount):
            out.append(
                {"volumeId": mount.volume_id, "mountPath": mount.mount_path, "readOnly": mount.read_only}
            )
        else:
            out.append(dict(mount))
    return out


def parse_volume_spec(spec: str) -> dict[str, Any]:
    """`ID:/path[:ro]` (the CLI's `--volume`) as a volume mount."""
    volume_id, sep, rest = spec.partition(":")
    if not sep or not volume_id or not rest:
        raise ValueError(f"expected ID:/path[:ro], got {spec!r}")
    read_only = rest.endswith(":ro")
    path = rest[: -len(":ro")] if read_only else rest.removesuffix(":rw")
    return {"volumeId": volume_id, "mountPath": path, "readOnly": read_only}


def _lifecycle(method: str, path: str, wait: float | None, body: Any = None) -> Call[dict[str, Any]]:
    params, read_timeout = server_wait(wait)
    return Call(
        method, path, _dict, params=params, body=body, retry=Retry.LIFECYCLE, read_timeout=read_timeout
    )


def create_sandbox(body: Mapping[str, Any], wait: float | None) -> Call[dict[str, Any]]:
    return _lifecycle("POST", "/sandboxes", wait, dict(body))


def get_sandbox(sandbox_id: str) -> Call[dict[str, Any]]:
    return Call("GET", f"/sandboxes/{_id(sandbox_id)}", _dict)


def list_sandboxes(
    status: str | Sequence[str] | None,
    environment_id: str | None,
    metadata: Mapping[str, str] | None,
    limit: int | None,
) -> Call[dict[str, Any]]:
    params: dict[str, Any] = {"environmentId": environment_id, "limit": limit}
    if status is not None:
        params["status"] = status if isinstance(status, str) else ",".join(status)
    for key, value in (metadata or {}).items():
        params[f"metadata.{key}"] = value
    return Call("GET", "/sandboxes", _dict, params=params)


def sandbox_action(sandbox_id: str, verb: str, wait: float | None) -> Call[dict[str, Any]]:
    return _lifecycle("POST", f"/sandboxes/{_id(sandbox_id)}/{verb}", wait)


def destroy_sandbox(sandbox_id: str, wait: float | None) -> Call[dict[str, Any]]:
    return _lifecycle("DELETE", f"/sandboxes/{_id(sandbox_id)}", wait)


def replicate_sandbox(sandbox_id: str, body: Mapping[str, Any], wait: float | None) -> Call[dict[str, Any]]:
    return _lifecycle("POST", f"/sandboxes/{_id(sandbox_id)}/replicate", wait, dict(body))


def update_sandbox(sandbox_id: str, body: Mapping[str, Any]) -> Call[dict[str, Any]]:
    # A repeat sets the same metadata and onExpire; a repeated TTL counts from the repeat, which
    # is what the caller asked for anyway.
    return Call("PATCH", f"/sandboxes/{_id(sandbox_id)}", _dict, body=dict(body), retry=Retry.SAFE)


def update_body(
    ttl_seconds: int | None, metadata: Mapping[str, str] | None, on_expire: str | None
) -> dict[str, Any]:
    """The PATCH body: only the fields given (metadata replaces; `{}` empties it)."""
    body: dict[str, Any] = {}
    if ttl_seconds is not None:
        body["ttlSeconds"] = ttl_seconds
    if metadata is not None:
        body["metadata"] = dict(metadata)
    if on_expire is not None:
        body["onExpire"] = on_expire
    return body


def update_sandbox_network(sandbox_id: str, body: Mapping[str, Any]) -> Call[dict[str, Any]]:
    # Setting the same policy again changes nothing: safe to repeat.
    return Call("PATCH", f"/sandboxes/{_id(sandbox_id)}/network", _dict, body=dict(body), retry=Retry.SAFE)


def exec_command(
    sandbox_id: str,
    command: str | Sequence[str],
    timeout: float | None,
    env: Mapping[str, str] | None,
    workdir: str | None,
) -> Call[ExecResult]:
    body: dict[str, Any] = {"command": command if isinstance(command, str) else list(command)}
    if timeout is not None:
        body["timeoutSeconds"] = timeout
    if env:
        body["env"] = dict(env)
    if workdir is not None:
        body["workdir"] = workdir
    # Running a command twice is not harmless: it is retried only when it surely did not arrive.
    own = EXEC_DEFAULT_TIMEOUT if timeout is None else timeout
    return Call(
        "POST",
        f"/sandboxes/{_id(sandbox_id)}/exec",
        _model(ExecResult),
        body=body,
        retry=Retry.ONCE,
        read_timeout=own + SERVER_WAIT_MARGIN,
    )


def _log_lines(data: Any) -> list[LogLine]:
    return [LogLine.model_validate(line) for line in data]


def sandbox_logs(sandbox_id: str, tail: int | None, since: int | None) -> Call[list[LogLine]]:
    return Call(
        "GET", f"/sandboxes/{_id(sandbox_id)}/logs", _log_lines, params={"tail": tail, "since": since}
    )


def sandbox_metrics(sandbox_id: str) -> Call[Metrics]:
    return Call("GET", f"/sandboxes/{_id(sandbox_id)}/metrics", _model(Metrics))


def port_path(sandbox_id: str, port: int, path: str = "/") -> str:
    """Where the API proxies HTTP and WebSockets to `port` of the sandbox (`path` relative to the
    sandbox server's root)."""
    return f"/sandboxes/{_id(sandbox_id)}/ports/{int(port)}/{path.lstrip('/')}"


def create_preview_url(sandbox_id: str, port: int, expires_in_seconds: int | None) -> Call[PreviewUrl]:
    body: dict[str, Any] = {} if expires_in_seconds is None else {"expiresInSeconds": expires_in_seconds}
    return Call(
        "POST", f"/sandboxes/{_id(sandbox_id)}/ports/{int(port)}/preview-url", _model(PreviewUrl), body=body
    )


def create_snapshot(sandbox_id: str, name: str | None, wait: float | None = None) -> Call[Snapshot]:
    """With `wait` (seconds) the API answers once the snapshot is ready or failed. Sent with an
    Idempotency-Key (Retry.LIFECYCLE), so a retry never makes a second snapshot."""
    body: dict[str, Any] = {} if name is None else {"name": name}
    params, read_timeout = server_wait(wait)
    return Call(
        "POST",
        f"/sandboxes/{_id(sandbox_id)}/snapshots",
        _model(Snapshot),
        params=params,
        body=body,
        retry=Retry.LIFECYCLE,
        read_timeout=read_timeout,
    )


def list_snapshots(sandbox_id: str | None, limit: int | None) -> Call[Snapshot]:
    return Call("GET", "/snapshots", _model(Snapshot), params={"sandboxId": sandbox_id, "limit": limit})


def get_snapshot(snapshot_id: str) -> Call[Snapshot]:
    return Call("GET", f"/snapshots/{_id(snapshot_id)}", _model(Snapshot))


def delete_snapshot(snapshot_id: str) -> Call[None]:
    return Call("DELETE", f"/snapshots/{_id(snapshot_id)}", _none, retry=Retry.ONCE)


def create_volume(name: str, size_mib: int | None) -> Call[Volume]:
    body: dict[str, Any] = {"name": name}
    if size_mib is not None:
        body["sizeMiB"] = size_mib
    return Call("POST", "/volumes", _model(Volume), body=body, retry=Retry.ONCE)


def list_volumes(limit: int | None) -> Call[Volume]:
    return Call("GET", "/volumes", _model(Volume), params={"limit": limit})


def get_volume(volume_id: str) -> Call[Volume]:
    return Call("GET", f"/volumes/{_id(volume_id)}", _model(Volume))


def delete_volume(volume_id: str) -> Call[None]:
    return Call("DELETE", f"/volumes/{_id(volume_id)}", _none, retry=Retry.ONCE)


def list_audit(limit: int | None) -> Call[AuditEvent]:
    return Call("GET", "/audit", _model(AuditEvent), params={"limit": limit})


def health() -> Call[Health]:
    # The body is the answer also when degraded (503), and a probe is not retried.
    return Call(
        "GET",
        "/health",
        _model(Health),
        envelope=False,
        accept=frozenset({503}),
        authenticated=False,
        retry=Retry.ONCE,
    )


def info() -> Call[Info]:
    return Call("GET", "/info", _model(Info), authenticated=False)


def runtime_fields(runtime: str | None, disk: int | None, warm_pool: int | None = None) -> dict[str, Any]:
    """`runtime`, `disk` and `warmPool` of an environment, when given."""
    body: dict[str, Any] = {}
    if warm_pool is not None:
        body["warmPool"] = warm_pool
    if runtime is not None:
        body["runtime"] = runtime
    if disk is not None:
        body["disk"] = disk
    return body


def sandbox_events_path(sandbox_id: str | None) -> str:
    """The SSE route of one sandbox's events, or of all the caller's."""
    return "/events" if sandbox_id is None else f"/sandboxes/{_id(sandbox_id)}/events"


def logs_socket_path(sandbox_id: str) -> str:
    return f"/ws/sandboxes/{_id(sandbox_id)}/logs"


def terminal_socket_path(sandbox_id: str) -> str:
    return f"/ws/sandboxes/{_id(sandbox_id)}/terminal"


def files_watch_socket_path(sandbox_id: str) -> str:
    return f"/ws/sandboxes/{_id(sandbox_id)}/files/watch"


EVENTS_SOCKET_PATH = "/ws/events"


# --- background processes ---


def _processes(sandbox_id: str) -> str:
    return f"/sandboxes/{_id(sandbox_id)}/processes"


def start_process(
    sandbox_id: str, command: str | Sequence[str], options: Mapping[str, Any]
) -> Call[ProcessInfo]:
    body: dict[str, Any] = {"command": command if isinstance(command, str) else list(command)}
    body.update({key: value for key, value in options.items() if value is not None})
    # Starting a process twice is not harmless: it is retried only when it surely did not arrive.
    return Call("POST", _processes(sandbox_id), _model(ProcessInfo), body=body, retry=Retry.ONCE)


def _process_list(data: Any) -> list[ProcessInfo]:
    return [ProcessInfo.model_validate(item) for item in data]


def list_processes(sandbox_id: str, status: str | None) -> Call[list[ProcessInfo]]:
    return Call("GET", _processes(sandbox_id), _process_list, params={"status": status})


def get_process(sandbox_id: str, process_id: str) -> Call[ProcessInfo]:
    return Call("GET", f"{_processes(sandbox_id)}/{_id(process_id)}", _model(ProcessInfo))


def process_output(
    sandbox_id: str, process_id: str, since: int, limit: int | None, encoding: str
) -> Call[ProcessOutput]:
    # The page's `nextSince` and `truncatedBefore` sit beside `data`, as a list's `nextCursor` does.
    return Call(
        "GET",
        f"{_processes(sandbox_id)}/{_id(process_id)}/output",
        _model(ProcessOutput),
        params={"since": since, "limit": limit, "encoding": encoding},
        envelope=False,
    )


def process_stdin(sandbox_id: str, process_id: str, data: bytes, eof: bool) -> Call[int]:
    return Call(
        "POST",
        f"{_processes(sandbox_id)}/{_id(process_id)}/stdin",
        lambda answer: int(answer["written"]),
        params={"eof": eof or None},
        content=data,
        retry=Retry.ONCE,
    )


def signal_process(sandbox_id: str, process_id: str, signal: str) -> Call[ProcessInfo]:
    return Call(
        "POST",
        f"{_processes(sandbox_id)}/{_id(process_id)}/signal",
        _model(ProcessInfo),
        body={"signal": signal},
        retry=Retry.ONCE,
    )


def resize_process(sandbox_id: str, process_id: str, cols: int, rows: int) -> Call[ProcessInfo]:
    return Call(
        "POST",
        f"{_processes(sandbox_id)}/{_id(process_id)}/resize",
        _model(ProcessInfo),
        body={"cols": cols, "rows": rows},
    )


def process_socket_path(sandbox_id: str, process_id: str) -> str:
    return f"/ws/sandboxes/{_id(sandbox_id)}/processes/{_id(process_id)}"


# --- Files ---------------------------------------------------------------------------------------


def _entries(data: Any) -> list[FileEntry]:
    return [FileEntry.model_validate(item) for item in data]


def list_files(sandbox_id: str, path: str) -> Call[list[FileEntry]]:
    return Call("GET", f"/sandboxes/{_id(sandbox_id)}/files", _entries, params={"path": path})


def stat_file(sandbox_id: str, path: str) -> Call[FileEntry]:
    return Call("GET", f"/sandboxes/{_id(sandbox_id)}/files/stat", _model(FileEntry), params={"path": path})


def make_directory(sandbox_id: str, path: str, parents: bool) -> Call[FileEntry]:
    body = {"path": path, "parents": parents}
    return Call(
        "POST", f"/sandboxes/{_id(sandbox_id)}/files/mkdir", _model(FileEntry), body=body, retry=Retry.ONCE
    )


def move_file(sandbox_id: str, source: str, target: str, overwrite: bool) -> Call[FileEntry]:
    body = {"from": source, "to": target, "overwrite": overwrite}
    return Call(
        "POST", f"/sandboxes/{_id(sandbox_id)}/files/move", _model(FileEntry), body=body, retry=Retry.ONCE
    )


def delete_file(sandbox_id: str, path: str, recursive: bool) -> Call[None]:
    params = {"path": path, "recursive": recursive}
    return Call("DELETE", f"/sandboxes/{_id(sandbox_id)}/files", _none, params=params, retry=Retry.ONCE)
