"""The `sbx` commands (typer). Each takes `--json` to print the API's data instead of tables."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, NoReturn

import typer
from rich.live import Live

from sandbox_platform import _routes as routes
from sandbox_platform._version import __version__
from sandbox_platform.cli import attach, output, refs, shell
from sandbox_platform.cli.attach import write_output
from sandbox_platform.cli.config import Config
from sandbox_platform.cli.output import out, print_json, print_json_line, short, when
from sandbox_platform.client import Client, Sandbox
from sandbox_platform.errors import SandboxPlatformError, UnauthorizedError
from sandbox_platform.models import Environment, Event, LogLine, Metrics, NetworkPolicy, Port, Snapshot

app = typer.Typer(
    name="sbx",
    help="Sandbox Platform: environments, sandboxes, exec, logs, shells.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
env_app = typer.Typer(help="Environments: what sandboxes are made from.", no_args_is_help=True)
secret_app = typer.Typer(
    help="Secrets of an environment (env variables stored encrypted).", no_args_is_help=True
)
key_app = typer.Typer(help="API keys: credentials for scripts, revocable one by one.", no_args_is_help=True)
volume_app = typer.Typer(help="Volumes: storage that outlives sandboxes.", no_args_is_help=True)
app.add_typer(env_app, name="env")
app.add_typer(volume_app, name="volume")
app.add_typer(secret_app, name="secret")
webhook_app = typer.Typer(
    help="Webhooks: your sandbox events POSTed, signed, to a URL.", no_args_is_help=True
)
app.add_typer(env_app, name="env")
app.add_typer(secret_app, name="secret")
app.add_typer(key_app, name="key")
app.add_typer(webhook_app, name="webhook")

Json = Annotated[bool, typer.Option("--json", help="Print the API's data as JSON.")]
Ref = Annotated[
    str, typer.Argument(metavar="REF", help="A full id, a unique id prefix, or a name.", show_default=False)
]
EnvPairs = Annotated[
    list[str] | None, typer.Option("--env", "-e", metavar="K=V", help="Repeatable.", show_default=False)
]
Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the sandbox has settled.")]
Egress = Annotated[
    str | None,
    typer.Option(
        "--egress", metavar="internet|none|allowlist", help="What the sandbox may reach.", show_default=False
    ),
]
Allow = Annotated[
    list[str] | None,
    typer.Option(
        "--allow", metavar="CIDR|HOST", help="With --egress allowlist (repeatable).", show_default=False
    ),
]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait at most.")]
OnExpire = Annotated[
    str | None,
    typer.Option(
        "--on-expire",
        metavar="destroy|stop|pause",
        help="What happens when the TTL runs out (default destroy).",
    ),
]


class _Exit(Exception):
    """Leave with this exit status (after the command's own output)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@contextlib.contextmanager
def _until_interrupted() -> Iterator[None]:
    """A command that follows a stream ends quietly on Ctrl-C, with the usual status (130)."""
    try:
        yield
    except KeyboardInterrupt:
        raise _Exit(130) from None


def _version(value: bool) -> None:
    if value:
        out.print(f"sbx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Sandbox Platform: environments, sandboxes, exec, logs, shells."""


def _client(config: Config | None = None, require_login: bool = True) -> Client:
    config = config or Config.load()
    if require_login and not config.logged_in:
        raise UnauthorizedError("UNAUTHORIZED", None, "You are not logged in.")
    return Client(base_url=config.effective_url, api_key=config.effective_api_key, token=config.token)


def _pairs(values: Sequence[str] | None, what: str = "--env") -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{value!r} is not K=V", param_hint=what)
        pairs[key] = rest
    return pairs


def _ports(values: Sequence[str] | None) -> list[Port]:
    ports: list[Port] = []
    for value in values or []:
        container, _, host = value.partition(":")
        try:
            ports.append(Port(container=int(container), host=int(host) if host else None))
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not CONTAINER[:HOST]", param_hint="--port") from None
    return ports


def _prompt_secret(label: str) -> str:
    return str(typer.prompt(label, hide_input=True))


# ---------------------------------------------------------------- account


def _remember(config: Config, client: Client, email: str | None, api_key: str | None) -> None:
    config.api_url = client.base_url
    config.email = email
    config.api_key = api_key
    config.token = client.token if api_key is None else None
    path = config.save()
    output.err.print(f"Credentials saved in {path}")


@app.command()
def signup(
    email: Annotated[str | None, typer.Option(help="Your email.")] = None,
    password: Annotated[str | None, typer.Option(help="8-128 characters (prompted when missing).")] = None,
    api_url: Annotated[str | None, typer.Option("--api-url", help="The API's URL.")] = None,
    json: Json = False,
) -> None:
    """Create an account and log in as it."""
    config = Config.load()
    if api_url:
        config.api_url = api_url
    email = email or str(typer.prompt("Email"))
    if password is None:
        password = str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    client = _client(config, require_login=False)
    user = client.auth.signup(email, password)
    _remember(config, client, user.email, None)
    if json:
        print_json({"user": user.to_api(), "token": client.token})
    else:
        out.print(f"Signed up and logged in as {user.email}")


@app.command()
def login(
    email: Annotated[str | None, typer.Option(help="Your email.")] = None,
    password: Annotated[str | None, typer.Option(help="Prompted when missing.")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="Log in with an API key instead.")] = None,
    api_url: Annotated[str | None, typer.Option("--api-url", help="The API's URL.")] = None,
    json: Json = False,
) -> None:
    """Log in with email and password (or an API key); the credential is saved for later commands."""
    config = Config.load()
    if api_url:
        config.api_url = api_url
    if api_key:
        client = Client(base_url=config.effective_url, api_key=api_key)
        user = client.auth.me()
        _remember(config, client, user.email, api_key)
        data: dict[str, Any] = {"user": user.to_api()}
    else:
        email = email or str(typer.prompt("Email"))
        password = password if password is not None else _prompt_secret("Password")
        client = _client(config, require_login=False)
        user = client.auth.login(email, password)
        _remember(config, client, user.email, None)
        data = {"user": user.to_api(), "token": client.token}
    if json:
        print_json(data)
    else:
        out.print(f"Logged in as {user.email}")


@app.command()
def whoami(json: Json = False) -> None:
    """Show the user the saved credential belongs to."""
    user = _client().auth.me()
    if json:
        print_json(user)
    else:
        out.print(user.email)


@app.command()
def passwd(
    current: Annotated[str | None, typer.Option("--current", help="Prompted when missing.")] = None,
    new: Annotated[
        str | None, typer.Option("--new", help="8-128 characters (prompted when missing).")
    ] = None,
    json: Json = False,
) -> None:
    """Change your password. Every token issued before is refused from then on; the new one is
    saved here."""
    config = Config.load()
    client = _client(config)
    current = current if current is not None else _prompt_secret("Current password")
    if new is None:
        new = str(typer.prompt("New password", hide_input=True, confirmation_prompt=True))
    user = client.auth.change_password(current, new)
    if config.effective_api_key is None:  # a saved session: keep the new token
        _remember(config, client, user.email, None)
    if json:
        print_json({"user": user.to_api()})
    else:
        out.print(f"Password changed for {user.email}; earlier sessions are logged out")


@app.command()
def logout(json: Json = False) -> None:
    """Log out: the saved token is revoked (refused from then on) and forgotten."""
    config = Config.load()
    if config.token:
        client = Client(base_url=config.effective_url, token=config.token)
        with contextlib.suppress(UnauthorizedError):  # already refused: forgetting it is enough
            client.auth.logout()
    config.token = None
    config.email = None
    config.api_key = None
    config.save()
    if json:
        print_json({"loggedOut": True})
    else:
        out.print("Logged out")


@key_app.command("create")
def key_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="What the key is for.")],
    expires_in_days: Annotated[
        int | None, typer.Option("--expires-in-days", help="The key stops working after 1-3650 days.")
    ] = None,
    json: Json = False,
) -> None:
    """Create an API key and print it (shown only now)."""
    created = _client().api_keys.create(name, expires_in_days=expires_in_days)
    if json:
        print_json(created)
        return
    output.details(
        [
            ("id", created.id),
            ("name", created.name),
            ("key", created.key),
            ("expires", when(created.expires_at) if created.expires_at else "never"),
        ]
    )


@key_app.command("ls")
def key_ls(json: Json = False) -> None:
    """List your API keys (never the keys themselves)."""
    keys = list(_client().api_keys.list())
    if json:
        print_json(keys)
        return
    output.table(
        ["ID", "NAME", "PREFIX", "CREATED", "LAST USED", "EXPIRES"],
        [
            [
                k.id,
                k.name,
                k.key_prefix,
                when(k.created_at),
                when(k.last_used_at) if k.last_used_at else "-",
                when(k.expires_at) if k.expires_at else "never",
            ]
            for k in keys
        ],
    )


@webhook_app.command("create")
def webhook_create(
    url: Annotated[str, typer.Argument(metavar="URL", help="Where to POST the events (http or https).")],
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="An event type (e.g. sandbox.running), repeatable; default sandbox.*."),
    ] = None,
    description: Annotated[str | None, typer.Option("--description", help="What the webhook is for.")] = None,
    json: Json = False,
) -> None:
    """Create a webhook and print its secret (shown only now)."""
    created = _client().webhooks.create(url, event or ["sandbox.*"], description=description)
    if json:
        print_json(created)
        return
    output.details(
        [
            ("id", created.id),
            ("url", created.url),
            ("events", ", ".join(created.events)),
            ("secret", created.secret),
        ]
    )


@webhook_app.command("ls")
def webhook_ls(json: Json = False) -> None:
    """List your webhooks (never their secrets)."""
    hooks = list(_client().webhooks.list())
    if json:
        print_json(hooks)
        return
    output.table(
        ["ID", "URL", "EVENTS", "CREATED"],
        [[h.id, h.url, ",".join(h.events), when(h.created_at)] for h in hooks],
    )


@webhook_app.command("rm")
def webhook_rm(
    webhook_id: Annotated[str, typer.Argument(metavar="ID", help="The webhook's id.")], json: Json = False
) -> None:
    """Delete a webhook: nothing more is delivered to it."""
    _client().webhooks.delete(webhook_id)
    if json:
        print_json({"id": webhook_id, "deleted": True})
    else:
        out.print(f"Deleted webhook {webhook_id}")


@webhook_app.command("deliveries")
def webhook_deliveries(
    webhook_id: Annotated[str, typer.Argument(metavar="ID", help="The webhook's id.")], json: Json = False
) -> None:
    """List a webhook's deliveries: one per event, with its attempts."""
    items = list(_client().webhooks.deliveries(webhook_id))
    if json:
        print_json(items)
        return
    output.table(
        ["ID", "EVENT", "STATUS", "ATTEMPTS", "HTTP", "LAST ATTEMPT"],
        [
            [
                d.id,
                d.event_id,
                d.status,
                str(d.attempts),
                str(d.response_status) if d.response_status is not None else "-",
                when(d.last_attempt_at) if d.last_attempt_at else "-",
            ]
            for d in items
        ],
    )


@key_app.command("rm")
def key_rm(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id.")], json: Json = False
) -> None:
    """Revoke an API key: it is refused from then on."""
    _client().api_keys.revoke(key_id)
    if json:
        print_json({"id": key_id, "deleted": True})
    else:
        out.print(f"Revoked key {key_id}")


# ---------------------------------------------------------------- installation


@app.command()
def info(json: Json = False) -> None:
    """Show what the platform offers: version, container runtimes, features and limits."""
    about = _client(require_login=False).info()
    if json:
        print_json(about)
        return
    limits = about.limits
    output.details(
        [
            ("version", about.version),
            ("runtimes", ", ".join(about.runtimes) or "-"),
            ("features", ", ".join(about.features) or "-"),
            (
                "disk",
                f"default {limits.default_disk_mib} MiB, {limits.min_disk_mib}-{limits.max_disk_mib} MiB"
                + (f" ({about.disk_limit})" if about.disk_limit else ""),
            ),
        ]
    )


# ---------------------------------------------------------------- environments

Runtime = Annotated[
    str | None, typer.Option(help="Container runtime: runc (default) or gvisor (see `sbx info`).")
]
Disk = Annotated[int | None, typer.Option(help="MiB of writable filesystem per sandbox (64-102400).")]
WarmPool = Annotated[
    int | None, typer.Option("--warm-pool", help="Ready sandboxes kept waiting for fast creates (0-20).")
]


def _show_environment(environment: Environment) -> None:
    output.details(
        [
            ("id", environment.id),
            ("name", environment.name),
            ("version", environment.version),
            ("image", environment.image),
            ("cpu", environment.cpu),
            ("memory", f"{environment.memory} MiB"),
            ("disk", f"{environment.disk} MiB" if environment.disk is not None else "-"),
            ("runtime", environment.runtime),
            ("warm pool", environment.warm_pool),
            ("ports", ", ".join(_port_text(p) for p in environment.ports) or "-"),
            ("env", " ".join(f"{k}={v}" for k, v in environment.env.items()) or "-"),
            ("command", shlex.join(environment.command) if environment.command else "(the image's)"),
            ("network", _network_text(environment.network)),
            ("secrets", ", ".join(s.key for s in environment.secrets) or "-"),
            ("created", when(environment.created_at)),
            ("updated", when(environment.updated_at)),
        ]
    )


def _network_text(network: NetworkPolicy) -> str:
    return network.egress + (f" ({', '.join(network.allow)})" if network.allow else "")


def _network(egress: str | None, allow: Sequence[str] | None) -> dict[str, Any] | None:
    if egress is None and not allow:
        return None
    return {"egress": egress or ("allowlist" if allow else "internet"), "allow": list(allow or [])}


def _port_text(port: Port) -> str:
    return f"{port.container}:{port.host}" if port.host else str(port.container)


@env_app.command("create")
def env_create(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="A name of your choice (letters, digits, . _ -).")
    ],
    *,
    image: Annotated[str, typer.Option("--image", help="The container image, e.g. python:3.12-slim.")],
    cpu: Annotated[float | None, typer.Option(help="Cores (default 1).")] = None,
    memory: Annotated[int | None, typer.Option(help="MiB (default 256).")] = None,
    port: Annotated[
        list[str] | None,
        typer.Option(
            "--port",
            "-p",
            metavar="C[:H]",
            help="Container port[:host port] (repeatable).",
            show_default=False,
        ),
    ] = None,
    env: EnvPairs = None,
    command: Annotated[
        str | None, typer.Option(help="Overrides the image's command (split like a shell).")
    ] = None,
    egress: Egress = None,
    allow: Allow = None,
    runtime: Runtime = None,
    disk: Disk = None,
    warm_pool: WarmPool = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the id.")] = False,
    json: Json = False,
) -> None:
    """Create an environment (version 1)."""
    environment = _client().environments.create(
        name=name,
        image=image,
        cpu=cpu,
        memory=memory,
        ports=_ports(port),
        env=_pairs(env),
        command=shlex.split(command) if command is not None else None,
        network=_network(egress, allow),
        runtime=runtime,
        disk=disk,
        warm_pool=warm_pool,
    )
    if json:
        print_json(environment)
    elif quiet:
        out.print(environment.id)
    else:
        out.print(f"Created environment {environment.name} ({environment.id}), version {environment.version}")


@env_app.command("update")
def env_update(
    ref: Ref,
    *,
    image: Annotated[str | None, typer.Option("--image", help="The container image.")] = None,
    cpu: Annotated[float | None, typer.Option(help="Cores.")] = None,
    memory: Annotated[int | None, typer.Option(help="MiB.")] = None,
    egress: Egress = None,
    allow: Allow = None,
    runtime: Runtime = None,
    disk: Disk = None,
    warm_pool: WarmPool = None,
    json: Json = False,
) -> None:
    """Make a new version of an environment with the fields given (the others carried over)."""
    client = _client()
    environment = client.environments.update(
        refs.environment(client, ref).id,
        image=image,
        cpu=cpu,
        memory=memory,
        network=_network(egress, allow),
        runtime=runtime,
        disk=disk,
        warm_pool=warm_pool,
    )
    if json:
        print_json(environment)
    else:
        out.print(
            f"Updated environment {environment.name} ({environment.id}), now version {environment.version}"
        )


@env_app.command("ls")
def env_ls(json: Json = False) -> None:
    """List your environments."""
    environments = list(_client().environments.list())
    if json:
        print_json(environments)
        return
    output.table(
        ["ID", "NAME", "VERSION", "IMAGE", "CPU", "MEMORY", "SECRETS", "UPDATED"],
        [
            [
                short(e.id),
                e.name,
                e.version,
                e.image,
                e.cpu,
                f"{e.memory} MiB",
                len(e.secrets),
                when(e.updated_at),
            ]
            for e in environments
        ],
    )


@env_app.command("show")
def env_show(ref: Ref, json: Json = False) -> None:
    """Show an environment at its current version."""
    environment = refs.environment(_client(), ref)
    if json:
        print_json(environment)
    else:
        _show_environment(environment)


@env_app.command("rm")
def env_rm(ref: Ref, json: Json = False) -> None:
    """Delete an environment (refused while sandboxes that are not destroyed use it)."""
    client = _client()
    environment = refs.environment(client, ref)
    client.environments.delete(environment.id)
    if json:
        print_json({"id": environment.id, "deleted": True})
    else:
        out.print(f"Deleted environment {environment.name}")


@secret_app.command("set")
def secret_set(
    env: Annotated[str, typer.Argument(metavar="ENV", help="The environment (REF).")],
    key: Annotated[str, typer.Argument(metavar="KEY", help="Upper case, e.g. API_KEY.")],
    value: Annotated[
        str | None,
        typer.Argument(metavar="VALUE", help="`-` or left out: read from stdin (or a prompt)."),
    ] = None,
    json: Json = False,
) -> None:
    """Set (or replace) a secret of an environment; new sandboxes get it as an env variable."""
    if value is None and sys.stdin.isatty():
        value = _prompt_secret(f"Value of {key}")
    elif value is None or value == "-":
        value = sys.stdin.read().removesuffix("\n")
    client = _client()
    environment = refs.environment(client, env)
    secret = client.environments.set_secret(environment.id, key, value)
    if json:
        print_json(secret)
    else:
        out.print(f"Set secret {secret.key} of {environment.name}")


@secret_app.command("rm")
def secret_rm(
    env: Annotated[str, typer.Argument(metavar="ENV", help="The environment (REF).")],
    key: Annotated[str, typer.Argument(metavar="KEY", help="The secret's key.")],
    json: Json = False,
) -> None:
    """Remove a secret of an environment."""
    client = _client()
    environment = refs.environment(client, env)
    client.environments.delete_secret(environment.id, key)
    if json:
        print_json({"key": key, "deleted": True})
    else:
        out.print(f"Removed secret {key} of {environment.name}")


# ---------------------------------------------------------------- sandboxes


def _summary(sandbox: Sandbox) -> str:
    reason = f" ({sandbox.status_reason})" if sandbox.status_reason else ""
    return f"{sandbox.name} ({sandbox.id}) is {sandbox.status}{reason}"


def _show_sandbox(sandbox: Sandbox) -> None:
    output.details(
        [
            ("id", sandbox.id),
            ("name", sandbox.name),
            ("status", sandbox.status + (f" ({sandbox.status_reason})" if sandbox.status_reason else "")),
            ("environment", f"{sandbox.environment_id} (version {sandbox.environment_version})"),
            ("image", sandbox.image),
            ("cpu", sandbox.cpu),
            ("memory", f"{sandbox.memory} MiB"),
            ("disk", f"{sandbox.disk} MiB" if sandbox.disk is not None else "-"),
            ("runtime", sandbox.runtime),
            ("env", " ".join(f"{k}={v}" for k, v in sandbox.env.items()) or "-"),
            ("metadata", " ".join(f"{k}={v}" for k, v in sandbox.metadata.items()) or "-"),
            (
                "endpoints",
                ", ".join(e.url or f"{e.container_port}->{e.host_port}" for e in sandbox.endpoints) or "-",
            ),
            ("network", _network_text(sandbox.network)),
            ("created", when(sandbox.created_at)),
            ("started", when(sandbox.started_at)),
            ("stopped", when(sandbox.stopped_at)),
            ("expires", f"{when(sandbox.expires_at)} (then {sandbox.on_expire})"),
            ("destroyed", when(sandbox.destroyed_at)),
        ]
    )


def _settled_output(sandbox: Sandbox, json: bool, quiet: bool = False) -> None:
    if json:
        print_json(sandbox)
    elif quiet:
        out.print(sandbox.id)
    else:
        out.print(_summary(sandbox))
    if sandbox.status == "failed":
        raise SandboxPlatformError("SANDBOX_FAILED", None, f"{sandbox.name} failed: {sandbox.status_reason}")


Volumes = Annotated[
    list[str] | None,
    typer.Option(
        "--volume",
        "-v",
        metavar="ID:/path[:ro]",
        help="Mount a volume (repeatable; :ro for read-only).",
        show_default=False,
    ),
]


def _volumes(values: Sequence[str] | None) -> list[dict[str, Any]]:
    try:
        return [routes.parse_volume_spec(v) for v in values or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--volume") from None


@app.command()
def create(
    env: Annotated[
        str | None, typer.Argument(metavar="ENV", help="The environment (REF); not with --snapshot.")
    ] = None,
    *,
    snapshot: Annotated[
        str | None, typer.Option("--snapshot", metavar="ID", help="Start from a snapshot's files.")
    ] = None,
    volumes: Volumes = None,
    name: Annotated[str | None, typer.Option(help="A name (default: <environment>-<random>).")] = None,
    ttl: Annotated[int | None, typer.Option(help="Seconds before it is destroyed (default 3600).")] = None,
    env_vars: EnvPairs = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option("--metadata", "-m", metavar="K=V", help="Repeatable.", show_default=False),
    ] = None,
    on_expire: OnExpire = None,
    wait: Wait = True,
    timeout: Timeout = 120.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the id.")] = False,
    json: Json = False,
) -> None:
    """Create a sandbox from an environment (or a snapshot); waits until it runs unless --no-wait."""
    if (env is None) == (snapshot is None):
        raise typer.BadParameter("give either ENV or --snapshot", param_hint="ENV")
    client = _client()
    environment = refs.environment(client, env) if env is not None else None
    source = environment.name if environment is not None else f"snapshot {snapshot}"
    with output.spinner(f"Creating a sandbox of {source}..."):
        sandbox = client.sandboxes.create(
            environment.id if environment is not None else None,
            snapshot_id=snapshot,
            volumes=_volumes(volumes),
            name=name,
            ttl_seconds=ttl,
            env=_pairs(env_vars),
            metadata=_pairs(metadata, "--metadata"),
            on_expire=on_expire,
            wait=wait,
            timeout=timeout,
        )
    _settled_output(sandbox, json, quiet)


@app.command("ls")
def ls(
    all_: Annotated[
        bool, typer.Option("--all", "-a", help="Include destroyed and expired sandboxes.")
    ] = False,
    status: Annotated[str | None, typer.Option(help="Only these statuses (comma separated).")] = None,
    json: Json = False,
) -> None:
    """List your sandboxes, newest first."""
    statuses = status if status else (",".join(refs.ALL_STATUSES) if all_ else None)
    sandboxes = list(_client().sandboxes.list(status=statuses))
    if json:
        print_json(sandboxes)
        return
    output.table(
        ["ID", "NAME", "STATUS", "IMAGE", "CREATED", "EXPIRES"],
        [[short(s.id), s.name, s.status, s.image, when(s.created_at), when(s.expires_at)] for s in sandboxes],
    )


@app.command()
def show(ref: Ref, json: Json = False) -> None:
    """Show a sandbox."""
    sandbox = refs.sandbox(_client(), ref)
    if json:
        print_json(sandbox)
    else:
        _show_sandbox(sandbox)


def _lifecycle_command(name: str, verb: str, summary: str) -> None:
    """Register `sbx <name> REF`, which calls the sandbox's `verb` method."""

    def command(ref: Ref, wait: Wait = True, timeout: Timeout = 120.0, json: Json = False) -> None:
        sandbox = refs.sandbox(_client(), ref)
        with output.spinner(f"{verb.capitalize()} {sandbox.name}..."):
            getattr(sandbox, verb)(wait=wait, timeout=timeout)
        _settled_output(sandbox, json)

    command.__doc__ = summary
    app.command(name)(command)


_lifecycle_command("start", "start", "Start a stopped sandbox.")
_lifecycle_command("stop", "stop", "Stop a sandbox.")
_lifecycle_command("restart", "restart", "Restart a sandbox.")
_lifecycle_command("pause", "pause", "Pause a running sandbox (processes frozen, memory and files kept).")
_lifecycle_command("resume", "resume", "Resume a paused sandbox.")
_lifecycle_command("rm", "destroy", "Destroy a sandbox (its container is removed).")


def _updated_output(sandbox: Sandbox, json: bool) -> None:
    if json:
        print_json(sandbox)
    else:
        expiry = when(sandbox.expires_at) if sandbox.expires_at else "never"
        out.print(f"{sandbox.name} ({sandbox.id}): expires {expiry} (then {sandbox.on_expire})")


@app.command()
def ttl(
    ref: Ref,
    seconds: Annotated[
        int, typer.Argument(metavar="SECONDS", help="The new TTL, counted from now (10-604800).")
    ],
    json: Json = False,
) -> None:
    """Set a sandbox's TTL, counted from now."""
    _updated_output(refs.sandbox(_client(), ref).update(ttl_seconds=seconds), json)


@app.command()
def update(
    ref: Ref,
    *,
    ttl: Annotated[int | None, typer.Option(help="A new TTL in seconds, counted from now.")] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            "--metadata", "-m", metavar="K=V", help="Repeatable; replaces all metadata.", show_default=False
        ),
    ] = None,
    clear_metadata: Annotated[bool, typer.Option("--clear-metadata", help="Remove all metadata.")] = False,
    on_expire: OnExpire = None,
    json: Json = False,
) -> None:
    """Change a sandbox's TTL, metadata or what happens when its TTL runs out."""
    new_metadata = {} if clear_metadata else (_pairs(metadata, "--metadata") if metadata else None)
    sandbox = refs.sandbox(_client(), ref).update(ttl_seconds=ttl, metadata=new_metadata, on_expire=on_expire)
    _updated_output(sandbox, json)


@app.command()
def network(
    ref: Ref,
    *,
    egress: Annotated[
        str,
        typer.Option("--egress", metavar="internet|none|allowlist", help="What the sandbox may reach."),
    ],
    allow: Allow = None,
    json: Json = False,
) -> None:
    """Change what a sandbox may reach; a running sandbox follows within a second."""
    sandbox = refs.sandbox(_client(), ref).update_network(egress, allow)
    if json:
        print_json(sandbox)
    else:
        out.print(f"{sandbox.name} ({sandbox.id}): network {_network_text(sandbox.network)}")


@app.command()
def replicate(
    ref: Ref,
    *,
    name: Annotated[str | None, typer.Option(help="The copy's name.")] = None,
    ttl: Annotated[int | None, typer.Option(help="The copy's TTL in seconds.")] = None,
    env_vars: EnvPairs = None,
    with_filesystem: Annotated[
        bool, typer.Option("--with-filesystem", help="Start with the source's files as they are now.")
    ] = False,
    volumes: Volumes = None,
    wait: Wait = True,
    timeout: Timeout = 120.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the id.")] = False,
    json: Json = False,
) -> None:
    """Create a copy of a sandbox: same environment version and env (--env merged over it)."""
    sandbox = refs.sandbox(_client(), ref)
    with output.spinner(f"Replicating {sandbox.name}..."):
        copy = sandbox.replicate(
            name=name,
            ttl_seconds=ttl,
            env=_pairs(env_vars),
            with_filesystem=with_filesystem,
            volumes=_volumes(volumes),
            wait=wait,
            timeout=timeout,
        )
    _settled_output(copy, json, quiet)


# ---------------------------------------------------------------- snapshots and volumes


def _snapshot_row(snap: Snapshot) -> list[Any]:
    return [snap.id, snap.name, snap.status, short(snap.sandbox_id), snap.size_bytes, when(snap.created_at)]


_SNAPSHOT_COLUMNS = ["ID", "NAME", "STATUS", "SANDBOX", "BYTES", "CREATED"]


@app.command()
def snapshot(
    ref: Ref,
    *,
    name: Annotated[str | None, typer.Option(help="A name (default: <sandbox>-<random>).")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until it is ready.")] = True,
    timeout: Timeout = 120.0,
    json: Json = False,
) -> None:
    """Keep a sandbox's filesystem as it is now (a snapshot to create sandboxes from)."""
    client = _client()
    sandbox = refs.sandbox(client, ref)
    with output.spinner(f"Snapshotting {sandbox.name}..."):
        snap = sandbox.snapshot(name, wait=wait, timeout=timeout)
    if json:
        print_json(snap)
    else:
        output.table(_SNAPSHOT_COLUMNS, [_snapshot_row(snap)])
    if snap.status == "failed":
        raise SandboxPlatformError("SNAPSHOT_FAILED", None, f"{snap.name} failed: {snap.status_reason}")


@app.command()
def snapshots(
    sandbox: Annotated[str | None, typer.Option("--sandbox", metavar="REF", help="Of one sandbox.")] = None,
    json: Json = False,
) -> None:
    """List your snapshots, newest first."""
    client = _client()
    sandbox_id = refs.sandbox(client, sandbox).id if sandbox is not None else None
    found = list(client.snapshots.list(sandbox_id=sandbox_id))
    if json:
        print_json(found)
        return
    output.table(_SNAPSHOT_COLUMNS, [_snapshot_row(s) for s in found])


@app.command("snapshot-rm")
def snapshot_rm(
    snapshot_id: Annotated[str, typer.Argument(metavar="ID", help="The snapshot's id.")], json: Json = False
) -> None:
    """Delete a snapshot and its image (refused while a sandbox made from it is not destroyed)."""
    _client().snapshots.delete(snapshot_id)
    if json:
        print_json({"id": snapshot_id, "deleted": True})
    else:
        out.print(f"Deleted snapshot {snapshot_id}")


@volume_app.command("create")
def volume_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Unique among your volumes.")],
    size: Annotated[
        int | None, typer.Option("--size", metavar="MIB", help="Size in MiB (default 1024).")
    ] = None,
    json: Json = False,
) -> None:
    """Create a volume; mount it with `sbx create ENV --volume ID:/path`."""
    volume = _client().volumes.create(name, size_mib=size)
    if json:
        print_json(volume)
    else:
        out.print(f"Created volume {volume.name} ({volume.id}), {volume.size_mib} MiB")


@volume_app.command("ls")
def volume_ls(json: Json = False) -> None:
    """List your volumes."""
    volumes = list(_client().volumes.list())
    if json:
        print_json(volumes)
        return
    output.table(
        ["ID", "NAME", "SIZE MIB", "USED BYTES", "ATTACHED TO", "CREATED"],
        [
            [
                v.id,
                v.name,
                v.size_mib,
                v.used_bytes,
                ", ".join(short(a) for a in v.attached_to) or "-",
                when(v.created_at),
            ]
            for v in volumes
        ],
    )


@volume_app.command("rm")
def volume_rm(ref: Ref, json: Json = False) -> None:
    """Delete a volume and its data (refused while a sandbox that is not destroyed mounts it)."""
    client = _client()
    volume = refs.volume(client, ref)
    client.volumes.delete(volume.id)
    if json:
        print_json({"id": volume.id, "deleted": True})
    else:
        out.print(f"Deleted volume {volume.name}")


@app.command("exec")
def exec_(
    ref: Ref,
    command: Annotated[
        list[str], typer.Argument(metavar="CMD", help="After --: the command and its arguments.")
    ],
    *,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds before it is ended.")] = None,
    env_vars: EnvPairs = None,
    workdir: Annotated[
        str | None, typer.Option("--workdir", "-w", help="Absolute directory to run in.")
    ] = None,
    json: Json = False,
) -> None:
    """Run a command in a running sandbox: its output on ours, its exit code as ours."""
    sandbox = refs.sandbox(_client(), ref)
    result = sandbox.exec(command, timeout=timeout, env=_pairs(env_vars) or None, workdir=workdir)
    if json:
        print_json(result)
    else:
        sys.stdout.write(result.stdout)
        sys.stdout.flush()
        sys.stderr.write(result.stderr)
        sys.stderr.flush()
    if result.timed_out:
        if not json:
            output.fail(f"TIMED_OUT: the command did not end within {timeout or 30:g} s")
        raise _Exit(124)
    raise _Exit(result.exit_code or 0)


# ---------------------------------------------------------------- ports and previews


@app.command()
def preview(
    ref: Ref,
    port: Annotated[int, typer.Argument(metavar="PORT", help="The sandbox's port (1-65535).")],
    *,
    expires: Annotated[
        int | None, typer.Option("--expires", metavar="SECONDS", help="60 to 604800 (default 3600).")
    ] = None,
    json: Json = False,
) -> None:
    """Print a signed link to a port of a running sandbox that a browser opens with no other
    credential (until it expires or the sandbox is destroyed)."""
    link = refs.sandbox(_client(), ref).get_preview_url(port, expires)
    if json:
        print_json(link)
    else:
        sys.stdout.write(link.url + "\n")
        sys.stdout.flush()
        output.err.print(f"expires {when(link.expires_at)}")


@app.command("http")
def http_(
    ref: Ref,
    port: Annotated[int, typer.Argument(metavar="PORT", help="The sandbox's port (1-65535).")],
    path: Annotated[
        str, typer.Argument(metavar="PATH", help="Path and query on the sandbox's server.")
    ] = "/",
    *,
    method: Annotated[str, typer.Option("--request", "-X", metavar="METHOD", help="HTTP method.")] = "GET",
    data: Annotated[
        str | None,
        typer.Option("--data", "-d", metavar="DATA", help="Request body; @FILE reads a file, @- stdin."),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", "-H", metavar="'K: V'", help="Repeatable.", show_default=False),
    ] = None,
    include: Annotated[
        bool, typer.Option("--include", "-i", help="Print the status line and headers too.")
    ] = False,
) -> None:
    """An HTTP request to a port of a running sandbox, through the API: the body of the answer on
    stdout; exit 1 on a status of 400 or more (the sandbox's own) after printing it."""
    headers: dict[str, str] = {}
    for value in header or []:
        name, sep, text = value.partition(":")
        if not sep or not name.strip():
            output.fail(f"VALIDATION_ERROR: --header wants 'Name: value', not {value!r}")
            raise _Exit(2)
        headers[name.strip()] = text.strip()
    content: bytes | None = None
    if data is not None:
        if data == "@-":
            content = sys.stdin.buffer.read()
        elif data.startswith("@"):
            with open(data[1:], "rb") as source:
                content = source.read()
        else:
            content = data.encode()
    response = refs.sandbox(_client(), ref).port_request(
        port, method.upper(), path, headers=headers, content=content
    )
    if include:
        output.err.print(f"HTTP/1.1 {response.status_code} {response.reason_phrase}")
        for name, value in response.headers.items():
            output.err.print(f"{name}: {value}")
    sys.stdout.buffer.write(response.content)
    sys.stdout.flush()
    if response.status_code >= 400:
        raise _Exit(1)


def _print_line(line: LogLine) -> None:
    stream = sys.stderr if line.stream == "stderr" else sys.stdout
    stream.write(line.text + "\n")
    stream.flush()


@app.command()
def logs(
    ref: Ref,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    tail: Annotated[int, typer.Option("--tail", "-n", help="How many past lines.")] = 100,
    json: Json = False,
) -> None:
    """Print a sandbox's log lines (stderr lines on stderr); -f follows and survives dropped connections."""
    sandbox = refs.sandbox(_client(), ref)
    if not follow:
        lines = sandbox.logs(tail=tail) if tail > 0 else []
        if json:
            print_json(lines)
        else:
            for line in lines:
                _print_line(line)
        return
    with _until_interrupted(), sandbox.stream_logs(tail=tail) as stream:
        for line in stream:
            if json:
                print_json_line(line)
            else:
                _print_line(line)


@app.command()
def events(
    ref: Annotated[
        str | None, typer.Argument(metavar="REF", help="One sandbox; all of yours when left out.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Resume right after this event id.")] = None,
    count: Annotated[int | None, typer.Option("--count", "-c", help="Stop after this many events.")] = None,
    json: Json = False,
) -> None:
    """Follow sandbox events (one sandbox's history first, then live ones)."""
    client = _client()
    stream = refs.sandbox(client, ref).events(since=since) if ref else client.events(since=since)
    with _until_interrupted(), stream:
        for seen, event in enumerate(stream, start=1):
            _print_event(event, json)
            if count is not None and seen >= count:
                return


def _print_event(event: Event, json: bool) -> None:
    if json:
        print_json_line(event)
        return
    reason = event.data.get("reason")
    suffix = f"  {reason}" if reason else ""
    out.print(f"{when(event.occurred_at)}  {event.id:>6}  {short(event.sandbox_id)}  {event.type}{suffix}")


def _metrics_table(metrics: Metrics) -> Any:
    from rich.table import Table

    grid = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("CPU", "MEMORY", "NET RX/TX", "IO READ/WRITE", "PIDS", "SAMPLED"):
        grid.add_column(column)
    grid.add_row(
        f"{metrics.cpu.usage_percent:.1f}% of {metrics.cpu.cores:g} cores",
        f"{output.size(metrics.memory.usage_bytes)} / {output.size(metrics.memory.limit_bytes)}"
        f" ({metrics.memory.usage_percent:.1f}%)",
        f"{output.size(metrics.network.rx_bytes)} / {output.size(metrics.network.tx_bytes)}",
        f"{output.size(metrics.io.read_bytes)} / {output.size(metrics.io.write_bytes)}",
        str(metrics.pids),
        when(metrics.timestamp),
    )
    return grid


def _samples(sandbox: Sandbox, interval: float) -> Iterator[Metrics]:
    while True:
        yield sandbox.metrics()
        time.sleep(interval)


@app.command()
def metrics(
    ref: Ref,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until interrupted.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes with --watch.")] = 2.0,
    json: Json = False,
) -> None:
    """Show a running sandbox's CPU, memory, network and I/O."""
    sandbox = refs.sandbox(_client(), ref)
    if not watch:
        sample = sandbox.metrics()
        if json:
            print_json(sample)
        else:
            out.print(_metrics_table(sample))
        return
    with _until_interrupted():
        if json:
            for sample in _samples(sandbox, interval):
                print_json_line(sample)
            return
        with Live(console=out, auto_refresh=False) as live:
            for sample in _samples(sandbox, interval):
                live.update(_metrics_table(sample), refresh=True)


@app.command("shell")
def shell_(ref: Ref) -> None:
    """Open a shell in a running sandbox: a real terminal (raw mode, resized with the window)."""
    client = _client()
    sandbox = refs.sandbox(client, ref)
    raise _Exit(asyncio.run(shell.run(client._config, sandbox.id)))


# ---------------------------------------------------------------- background processes

process_app = typer.Typer(
    help="Background processes: keep running, output kept, reattach any time.", no_args_is_help=True
)
app.add_typer(process_app, name="process")
ProcessRef = Annotated[str, typer.Argument(metavar="PID", help="The process id (or a unique prefix).")]


def _process(sandbox: Sandbox, ref: str) -> Any:
    """A process of the sandbox by its id or a unique prefix of it."""
    if len(ref) == 36:
        return sandbox.processes.get(ref)
    found = [p for p in sandbox.processes.list() if p.id.startswith(ref)]
    if len(found) != 1:
        raise SandboxPlatformError(
            "NOT_FOUND", 404, f"{'No' if not found else 'More than one'} process matches {ref!r}."
        )
    return found[0]


def _process_rows(processes: Sequence[Any]) -> None:
    from rich.table import Table

    grid = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "STATUS", "EXIT", "PID", "STARTED", "COMMAND"):
        grid.add_column(column)
    for p in processes:
        ended = "" if p.status == "running" else str(p.exit_code if p.exit_signal is None else p.exit_signal)
        grid.add_row(
            short(p.id), p.status, ended, str(p.pid or ""), when(p.started_at), shlex.join(p.command)
        )
    out.print(grid)


@process_app.command("run")
def process_run(
    ref: Ref,
    command: Annotated[
        list[str], typer.Argument(metavar="CMD", help="After --: the command and its arguments.")
    ],
    *,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Print the process id and return.")] = False,
    use_tty: Annotated[bool, typer.Option("--tty", "-t", help="Give it a terminal (raw mode here).")] = False,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help="Send our stdin to it.")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds before it is killed.")] = None,
    env_vars: EnvPairs = None,
    workdir: Annotated[
        str | None, typer.Option("--workdir", "-w", help="Absolute directory to run in.")
    ] = None,
    json: Json = False,
) -> None:
    """Start a background process; without -d, follow its output and exit with its exit code."""
    client = _client()
    sandbox = refs.sandbox(client, ref)
    cols, rows = shell.window_size(sys.stdout.fileno()) if use_tty else (None, None)
    process = sandbox.processes.start(
        command,
        env=_pairs(env_vars) or None,
        workdir=workdir,
        tty=use_tty,
        cols=cols,
        rows=rows,
        timeout=timeout,
        stdin=interactive or use_tty,
    )
    if detach or json:
        if json:
            print_json(process)
        else:
            out.print(process.id)
        return
    _follow_process(client, sandbox, process, since=0, send_input=interactive or use_tty)


def _follow_process(client: Client, sandbox: Sandbox, process: Any, *, since: int, send_input: bool) -> None:
    with _until_interrupted():
        code = asyncio.run(
            attach.run(
                client._config, sandbox.id, process.id, since=since, tty=process.tty, send_input=send_input
            )
        )
    if code is not None:
        raise _Exit(code)


@process_app.command("attach")
def process_attach(
    ref: Ref,
    process_ref: ProcessRef,
    since: Annotated[int, typer.Option("--since", help="Replay the output after this seq.")] = 0,
    no_stdin: Annotated[bool, typer.Option("--no-stdin", help="Only watch: send no input.")] = False,
) -> None:
    """Reattach to a process: its output from --since, then live; our stdin goes to it."""
    client = _client()
    sandbox = refs.sandbox(client, ref)
    process = _process(sandbox, process_ref)
    _follow_process(
        client, sandbox, process, since=since, send_input=not no_stdin and process.status == "running"
    )


@process_app.command("ls")
def process_list(
    ref: Ref,
    status: Annotated[str | None, typer.Option("--status", help="running, exited or killed.")] = None,
    json: Json = False,
) -> None:
    """A sandbox's running processes and its last 100 ended ones."""
    processes = refs.sandbox(_client(), ref).processes.list(status=status)
    if json:
        print_json(processes)
    else:
        _process_rows(processes)


app.command("ps", help="A sandbox's background processes (as `sbx process ls`).")(process_list)


@process_app.command("logs")
def process_logs(
    ref: Ref,
    process_ref: ProcessRef,
    since: Annotated[int, typer.Option("--since", help="Only output after this seq.")] = 0,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until it ends.")] = False,
    json: Json = False,
) -> None:
    """Print a process's kept output (stderr on stderr); -f follows it to its end."""
    process = _process(refs.sandbox(_client(), ref), process_ref)
    chunks = process.stream(since=since) if follow else iter(process.output(since=since, limit=10_000).data)
    with _until_interrupted():
        for chunk in chunks:
            if json:
                print_json_line(chunk)
            else:
                write_output(chunk.stream, chunk.text or "")


@process_app.command("kill")
def process_kill(
    ref: Ref,
    process_ref: ProcessRef,
    signal_name: Annotated[
        str, typer.Option("--signal", "-s", help="TERM, KILL, INT, HUP, QUIT, USR1, USR2.")
    ] = "TERM",
    json: Json = False,
) -> None:
    """Send a signal to a process (TERM by default)."""
    process = _process(refs.sandbox(_client(), ref), process_ref).signal(signal_name.upper())
    if json:
        print_json(process)
    else:
        out.print(f"Sent {signal_name.upper()} to {short(process.id)}")


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the `sbx` console script: runs a command and exits with its status."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="sbx")
    except _Exit as done:
        sys.exit(done.code)
    except SandboxPlatformError as error:
        output.print_error(error)
        sys.exit(1)
    except BrokenPipeError:
        # The reader went away (`sbx logs -f | head`): nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(0)


# Files (a module of their own; it reaches `_client` above lazily).
from sandbox_platform.cli.files import cp, files_app  # noqa: E402

app.add_typer(files_app, name="files")
app.command("cp")(cp)
