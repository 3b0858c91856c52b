"""Who may publish and subscribe to what on NATS: one user per service, written down once.

Every deployment path renders its nats-server `authorization` block from `SERVICE_USERS`
(`render_config`): the embedded server of `make run` and the tests with bcrypt hashes of
freshly made passwords, compose and Kubernetes with references to environment variables
(`infra/nats/nats-server.conf`, checked against `render_config` by a test; `sbx-nats-config`
prints it). A service connects as its own user and is refused anything outside its lists:
the metrics collector cannot publish commands, only the orchestrator can answer exec and
terminal requests, only the API and the orchestrator see terminal bytes.

Each user's request replies come back on an inbox of its own (`inbox_prefix(user)`), which no
other user may subscribe to. Responders answer through `allow_responses` (a reply subject is
publishable only by the one who received the request), never through a publish right on
`_INBOX.>`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sbx_common import subjects
from sbx_common.topology import STREAM_CMD, STREAM_DLQ, STREAM_EVT, STREAM_LOG, STREAM_PROC

# The stream JetStream keeps the metrics bucket in, and the hosts' bucket.
KV_STREAM = f"KV_{subjects.METRICS_BUCKET}"
KV_HOSTS_STREAM = f"KV_{subjects.HOSTS_BUCKET}"

# The workers' durable consumers (each service takes its consumer's name from here). The per-host
# services have one per host (`<name>__<hostId>`; the default host keeps the plain name it had
# before hosts existed, so an upgraded installation keeps its consumers).
ORCHESTRATOR_CONSUMER = "orchestrator__commands"
REAPER_CONSUMER = "reaper__events"
LOG_SHIPPER_CONSUMER = "log-shipper__events"
WEBHOOKS_CONSUMER = "webhooks__events"

INBOX_ROOT = "_INBOX"


def per_host(consumer: str, host_id: str) -> str:
    return consumer if host_id == subjects.DEFAULT_HOST else f"{consumer}__{host_id}"


def orchestrator_consumer(host_id: str) -> str:
    """The durable consumer of one host's orchestrators on SBX_CMD (its host's commands only)."""
    return per_host(ORCHESTRATOR_CONSUMER, host_id)


def log_shipper_consumer(host_id: str) -> str:
    """The durable consumer of one host's log shippers on SBX_EVT (each host hears every
    `running` event and follows the containers its engine has)."""
    return per_host(LOG_SHIPPER_CONSUMER, host_id)


def inbox_prefix(user: str) -> str:
    """The prefix of `user`'s reply subjects: `_INBOX.<user>` (nats-py's `inbox_prefix`)."""
    return f"{INBOX_ROOT}.{user}"


def _durable_consumer(stream: str, consumer: str) -> list[str]:
    """What a worker needs to create, look at and pull from its own durable consumer, and ack."""
    api = "$JS.API.CONSUMER"
    return [
        f"{api}.CREATE.{stream}.{consumer}",
        f"{api}.CREATE.{stream}.{consumer}.>",
        f"{api}.DURABLE.CREATE.{stream}.{consumer}",
        f"{api}.INFO.{stream}.{consumer}",
        f"{api}.MSG.NEXT.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
    ]


def _any_durable_consumer(stream: str) -> list[str]:
    """`_durable_consumer` for every consumer name: the orchestrators' per-host consumers (a
    NATS permission cannot match part of a token, so it is the consumer token that is open)."""
    return _durable_consumer(stream, "*")


def _kv_read(stream: str) -> list[str]:
    """Reading a KV bucket: single gets, and the ordered consumer that lists its keys."""
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.DELETE.{stream}.*",
        f"$JS.API.CONSUMER.INFO.{stream}.*",
        f"$JS.FC.{stream}.>",
    ]


def _stream_admin(stream: str) -> list[str]:
    return [f"$JS.API.STREAM.{verb}.{stream}" for verb in ("INFO", "CREATE", "UPDATE")]


@dataclass(frozen=True)
class NatsUser:
    """One NATS user and its permissions (subjects may use NATS wildcards)."""

    name: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # Taken out of `publish` (the server checks deny before allow).
    deny_publish: tuple[str, ...] = ()
    # May publish a reply to the reply subject of a request it received (once each).
    allow_responses: bool = False
    description: str = field(default="", compare=False)

    @property
    def env_name(self) -> str:
        """The variable holding this user's password (or its bcrypt hash) for nats-server."""
        return "NATS_PASSWORD_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper())


def _user(
    name: str,
    description: str,
    publish: Iterable[str],
    subscribe: Iterable[str] = (),
    *,
    deny_publish: Iterable[str] = (),
    allow_responses: bool = False,
) -> NatsUser:
    return NatsUser(
        name=name,
        publish=tuple(publish),
        subscribe=(f"{inbox_prefix(name)}.>", *subscribe),
        deny_publish=tuple(deny_publish),
        allow_responses=allow_responses,
        description=description,
    )


TERM_ALL = f"{subjects.TERM_PREFIX}.*"
FSWATCH_ALL = f"{subjects.FSWATCH_PREFIX}.*"
FILES_ALL = f"{subjects.FILES_PREFIX}.*"
KV_METRICS_ALL = f"{subjects.METRICS_KV_PREFIX}.>"
KV_HOSTS_ALL = f"{subjects.HOSTS_KV_PREFIX}.*"
RPC_ANY_HOST = [subjects.rpc_all_hosts(name) for name in subjects.HOST_RPCS]

SERVICE_USERS: dict[str, NatsUser] = {
    u.name: u
    for u in [
        _user(
            "sbx-api",
            "sends commands, asks for exec, terminals, files and health; reads events, logs, metrics",
            publish=[
                subjects.CMD_ALL,
                *RPC_ANY_HOST,
                subjects.RPC_ORCHESTRATOR_HEALTH,
                f"{TERM_ALL}.in",
                f"{TERM_ALL}.ctl",
                f"{FILES_ALL}.up",
                f"{FSWATCH_ALL}.ctl",
                # Ordered push consumers on the events stream (SSE, WebSocket replays).
                f"$JS.API.CONSUMER.CREATE.{STREAM_EVT}",
                f"$JS.API.CONSUMER.DELETE.{STREAM_EVT}.*",
                f"$JS.API.CONSUMER.INFO.{STREAM_EVT}.*",
                f"$JS.FC.{STREAM_EVT}.>",
                # Reading the metrics bucket.
                f"$JS.API.STREAM.INFO.{KV_STREAM}",
                f"$JS.API.DIRECT.GET.{KV_STREAM}.>",
                f"$JS.API.STREAM.MSG.GET.{KV_STREAM}",
                # Reading the hosts' heartbeats (placement).
                *_kv_read(KV_HOSTS_STREAM),
            ],
            subscribe=[
                subjects.EVT_ALL,
                subjects.LOG_ALL,
                subjects.PROC_ALL,
                f"{TERM_ALL}.out",
                f"{TERM_ALL}.ctl",
                f"{FILES_ALL}.down",
                f"{FSWATCH_ALL}.out",
                KV_METRICS_ALL,
                subjects.NOTE_SNAPSHOT_ALL,
            ],
            # Its feeds are unnamed consumers it may delete; the workers' durables stay theirs.
            deny_publish=[
                f"$JS.API.CONSUMER.DELETE.{STREAM_EVT}.{REAPER_CONSUMER}",
                f"$JS.API.CONSUMER.DELETE.{STREAM_EVT}.{LOG_SHIPPER_CONSUMER}",
                f"$JS.API.CONSUMER.DELETE.{STREAM_EVT}.{WEBHOOKS_CONSUMER}",
            ],
        ),
        _user(
            "sbx-orchestrator",
            "takes commands, emits events and dead letters, answers exec, terminal, files and health",
            publish=[
                subjects.EVT_ALL,
                subjects.DLQ_ALL,
                subjects.NOTE_SNAPSHOT_ALL,
                subjects.PROC_ALL,
                f"{TERM_ALL}.out",
                f"{TERM_ALL}.ctl",
                f"{FILES_ALL}.down",
                f"{FSWATCH_ALL}.out",
                *_any_durable_consumer(STREAM_CMD),
                # Its host's heartbeat (a put), and reading it back.
                KV_HOSTS_ALL,
                f"$JS.API.STREAM.INFO.{KV_HOSTS_STREAM}",
                f"$JS.API.DIRECT.GET.{KV_HOSTS_STREAM}.>",
            ],
            subscribe=[
                *RPC_ANY_HOST,
                subjects.RPC_ORCHESTRATOR_HEALTH,
                f"{TERM_ALL}.in",
                f"{TERM_ALL}.ctl",
                f"{FILES_ALL}.up",
                f"{FSWATCH_ALL}.ctl",
            ],
            allow_responses=True,
        ),
        _user(
            "sbx-log-shipper",
            "follows `running` events, publishes log batches",
            publish=[subjects.LOG_ALL, *_any_durable_consumer(STREAM_EVT)],
        ),
        _user(
            "sbx-reaper",
            "reads events, re-publishes commands, asks the orchestrator's health, reports lost hosts",
            publish=[
                subjects.CMD_ALL,
                # `sandbox.failed` (host lost) of the sandboxes of a host that stopped heartbeating.
                subjects.EVT_ALL,
                subjects.RPC_ORCHESTRATOR_HEALTH,
                *_durable_consumer(STREAM_EVT, REAPER_CONSUMER),
                # Which hosts still heartbeat (a lost host's sandboxes are given up).
                *_kv_read(KV_HOSTS_STREAM),
            ],
        ),
        _user(
            "sbx-metrics-collector",
            "hears lifecycle events, writes the metrics bucket",
            publish=[KV_METRICS_ALL, f"$JS.API.STREAM.INFO.{KV_STREAM}"],
            subscribe=[subjects.EVT_ALL],
        ),
        _user(
            "sbx-webhooks",
            "reads events (its own durable consumer) to deliver them to webhooks",
            publish=_durable_consumer(STREAM_EVT, WEBHOOKS_CONSUMER),
        ),
        _user(
            "sbx-migrate",
            "declares the streams and the metrics bucket (sbx-migrate)",
            publish=[
                subject
                for stream in (
                    STREAM_CMD,
                    STREAM_EVT,
                    STREAM_LOG,
                    STREAM_DLQ,
                    STREAM_PROC,
                    KV_STREAM,
                    KV_HOSTS_STREAM,
                )
                for subject in _stream_admin(stream)
            ],
        ),
        _user(
            "sbx-admin",
            "the operator's tool (sbx-admin): reads the hosts' heartbeats",
            publish=_kv_read(KV_HOSTS_STREAM),
        ),
    ]
}

# Which user each service connects as.
SERVICE_USER_OF: dict[str, str] = {
    "api": "sbx-api",
    "orchestrator": "sbx-orchestrator",
    "log-shipper": "sbx-log-shipper",
    "reaper": "sbx-reaper",
    "metrics-collector": "sbx-metrics-collector",
    "webhooks": "sbx-webhooks",
    "migrate": "sbx-migrate",
}
# The operator's tool (`sbx-admin`), not a deployed service: it logs in as this user.
ADMIN_USER = "sbx-admin"


def _quote(value: str) -> str:
    # JSON strings are valid nats-server config strings; a quoted string is never a variable.
    return json.dumps(value)


def _subject_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_quote(s) for s in items) + "]"


def render_config(
    passwords: Mapping[str, str] | None = None,
    users: Iterable[NatsUser] | None = None,
) -> str:
    """The nats-server `authorization` block for `users` (default: every service user).

    `passwords` maps a user to what goes in its `password` field (a bcrypt hash); a user
    missing from it gets a reference to the environment variable `NatsUser.env_name`, which
    nats-server reads when it loads the file, so the file itself holds no secret.
    """
    chosen = list(SERVICE_USERS.values()) if users is None else list(users)
    passwords = passwords or {}
    lines = ["authorization {", "  users = ["]
    for user in chosen:
        password = _quote(passwords[user.name]) if user.name in passwords else f"${user.env_name}"
        lines += [
            "    {",
            f"      # {user.description}" if user.description else "",
            f"      user: {_quote(user.name)}",
            f"      password: {password}",
            "      permissions: {",
            f"        publish: {{ allow: {_subject_list(user.publish)}"
            + (f", deny: {_subject_list(user.deny_publish)}" if user.deny_publish else "")
            + " }",
            f"        subscribe: {{ allow: {_subject_list(user.subscribe)} }}",
        ]
        if user.allow_responses:
            lines.append("        allow_responses: true")
        lines += ["      }", "    }"]
    lines += ["  ]", "}"]
    return "\n".join(line for line in lines if line) + "\n"


def deployment_config() -> str:
    """`infra/nats/auth.conf`: every service user, each password read from nats-server's
    environment (`NATS_PASSWORD_<USER>`, a password or its bcrypt hash)."""
    return (
        "# Generated by `make nats-config` from sbx_common/nats_permissions.py; do not edit.\n"
        "# Each password is read from the environment of nats-server (a bcrypt hash works too).\n"
        + render_config()
    )


def main() -> None:
    sys.stdout.write(deployment_config())


if __name__ == "__main__":
    main()
