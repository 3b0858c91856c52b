"""`make run`: the whole platform on one machine, with embedded NATS and PostgreSQL.

Starts embedded servers unless SBX_NATS_URL / SBX_DATABASE_URL point elsewhere (`--nats-cluster N`:
N NATS servers in one cluster on loopback instead of one, streams replicated), creates
development-only secrets on first run (kept in the git-ignored `.state/` folder), applies the
migrations and the stream topology once, then runs the six services as separate processes with
prefixed logs. Ctrl-C or SIGTERM stops everything; data in `.state/` survives a restart.

`sbx-dev --hosts N` (root only) adds N-1 Docker hosts on extra engines side by side
(`sbx_devstack.engines`), each with its own orchestrator, log shipper, metrics collector and
reaper (`SBX_HOST_ID` `host2`...`hostN`); the machine's engine stays the host `local`. Images are
not copied: each engine pulls what its sandboxes need (docs/scale-out.md).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import signal
import sys
import threading
import time
from pathlib import Path

from pydantic import SecretStr
from sbx_common.migrate_cli import run as migrate
from sbx_common.settings import CommonSettings

from sbx_devstack.agent import AgentBuildError
from sbx_devstack.agent import build as build_agent
from sbx_devstack.engines import DockerEngine
from sbx_devstack.nats_auth import NatsCredentials
from sbx_devstack.nats_cluster import EmbeddedNatsCluster
from sbx_devstack.processes import DEFAULT_METRICS_PORTS, SERVICES, ServiceProcess
from sbx_devstack.servers import EmbeddedNats, EmbeddedPostgres
from sbx_devstack.webui import BuildError
from sbx_devstack.webui import build as build_dashboard

COLOURS = {
    "api": 36,
    "orchestrator": 35,
    "log-shipper": 33,
    "reaper": 32,
    "metrics-collector": 34,
    "webhooks": 31,
}
_print_lock = threading.Lock()


RAW_JSON = os.environ.get("SBX_DEV_LOG_FORMAT", "pretty") == "json"
_HIDDEN_KEYS = {"ts", "level", "service", "logger", "msg"}


def readable(line: str) -> str:
    """A service's JSON log line as `12:00:01 info  message key=value ...` for people."""
    if RAW_JSON:
        return line
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    if not isinstance(entry, dict):
        return line
    clock = str(entry.get("ts", ""))[11:19]
    extras = " ".join(f"{k}={v}" for k, v in entry.items() if k not in _HIDDEN_KEYS and k != "error")
    text = f"{clock} {entry.get('level', ''):<7} {entry.get('msg', '')} {extras}".rstrip()
    if "error" in entry:
        text += "\n" + str(entry["error"]).rstrip()
    return text


def say(name: str, line: str) -> None:
    width = max(len(n) for n in SERVICES)
    colour = COLOURS.get(name, 37)
    prefix = f"\033[{colour}m{name:<{width}}\033[0m |" if sys.stdout.isatty() else f"{name:<{width}} |"
    with _print_lock:
        print(f"{prefix} {readable(line)}", flush=True)  # noqa: T201


def load_dev_secrets(state: Path) -> dict[str, str]:
    """Development-only secrets, created once and reused so that data survives restarts."""
    path = state / "secrets.env"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            values[key] = value
    changed = False
    if "SBX_JWT_SECRET" not in values:
        values["SBX_JWT_SECRET"] = secrets.token_urlsafe(48)
        changed = True
    if "SBX_SECRETS_MASTER_KEY" not in values:
        values["SBX_SECRETS_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
        changed = True
    if changed:
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        path.chmod(0o600)
        say(
            "devstack",
            f"WARNING: created development-only secrets in {path}; set SBX_JWT_SECRET and "
            "SBX_SECRETS_MASTER_KEY yourself for any real deployment",
        )
    return values


def prepare_dashboard() -> None:
    """Build the web dashboard when it is missing or stale (unless SBX_UI_DIR names a build).
    Without Node.js, or when the build fails, the platform starts anyway and /ui/ says how to
    build it."""
    if os.environ.get("SBX_UI_DIR"):
        return
    try:
        result = build_dashboard(say=lambda line: say("devstack", line))
    except BuildError as exc:
        say("devstack", f"WARNING: the web dashboard was not built, /ui/ will say so: {exc}")
        return
    say("devstack", f"web dashboard {'built' if result.built else 'up to date'} ({result.dist})")


def prepare_agent() -> dict[str, str]:
    """Build the in-sandbox agent when missing or stale (unless SBX_AGENT_BINARY names one).
    Without Go the platform starts anyway; sandboxes then run without the agent."""
    if os.environ.get("SBX_AGENT_BINARY"):
        return {}
    try:
        path = build_agent()
    except AgentBuildError as exc:
        say("devstack", f"WARNING: the in-sandbox agent was not built, exec uses docker exec: {exc}")
        return {}
    say("devstack", f"in-sandbox agent ready ({path})")
    return {"SBX_AGENT_BINARY": str(path)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sbx-dev", description="The whole platform on this machine.")
    parser.add_argument(
        "--nats-cluster",
        type=int,
        default=0,
        metavar="N",
        help="run N embedded NATS servers as one cluster (client ports from SBX_EMBEDDED_NATS_PORT "
        "up, streams replicated min(N, 3) times unless SBX_STREAM_REPLICAS says otherwise)",
    )
    parser.add_argument(
        "--hosts", type=int, default=1, help="Docker hosts (extra engines side by side; root only)"
    )
    return parser.parse_args(argv)


def start_nats(
    state: Path, credentials: NatsCredentials, cluster_size: int
) -> EmbeddedNats | EmbeddedNatsCluster:
    """The embedded NATS: one server, or `cluster_size` servers in one cluster (each its own
    store under `.state/nats-cluster/`, so a single server's data in `.state/nats` stays)."""
    port = int(os.environ.get("SBX_EMBEDDED_NATS_PORT", "4222"))
    if cluster_size > 0:
        cluster = EmbeddedNatsCluster(
            state / "nats-cluster",
            size=cluster_size,
            config=credentials.authorization(),
            ports=[port + i for i in range(cluster_size)],
        )
        return cluster.start()
    return EmbeddedNats(state / "nats", port=port, config=credentials.authorization()).start()


# The services each extra host runs on its own engine.
HOST_SERVICES = ("orchestrator", "log-shipper", "metrics-collector", "reaper")


def start_extra_hosts(
    count: int,
    env: dict[str, str],
    nats_env: dict[str, dict[str, str]],
    engines: list[DockerEngine],
    processes: list[ServiceProcess],
) -> None:
    """Hosts `host2`... on extra engines, their services on ops ports 9111+ (ten per host); what
    is started goes into `engines` and `processes` (stopped by the caller, even on a failure)."""
    for n in range(1, count):
        host_id = f"host{n + 1}"
        engine = DockerEngine(n)
        engines.append(engine)
        engine.start()
        say("devstack", f"host {host_id}: Docker engine on {engine.docker_host} (bridge {engine.bridge})")
        for i, name in enumerate(HOST_SERVICES):
            service_env = {
                **env,
                **nats_env.get(name, {}),
                "SBX_HOST_ID": host_id,
                "SBX_DOCKER_HOST": engine.docker_host,
                "SBX_METRICS_PORT": str(9101 + 10 * n + i),
            }

            def sink(service: str, line: str, host: str = host_id) -> None:
                say(f"{service}@{host}", line)

            processes.append(ServiceProcess(name, service_env, sink=sink).start())


def main() -> None:
    args = parse_args()
    prepare_dashboard()
    agent_env = prepare_agent()
    state = Path(os.environ.get("SBX_STATE_DIR", ".state")).resolve()
    state.mkdir(parents=True, exist_ok=True)
    env: dict[str, str] = dict(agent_env)
    for key, value in load_dev_secrets(state).items():
        env[key] = os.environ.get(key, value)

    servers: list[EmbeddedNats | EmbeddedNatsCluster | EmbeddedPostgres] = []
    # Each service's own NATS user and password (embedded NATS only; with SBX_NATS_URL set, the
    # services read SBX_NATS_USER / SBX_NATS_PASSWORD from the environment).
    nats_env: dict[str, dict[str, str]] = {}
    if not os.environ.get("SBX_NATS_URL"):
        credentials = NatsCredentials.load_or_create(state / "nats-users.env")
        nats_env = {name: credentials.service_env(name) for name in [*SERVICES, "migrate"]}
        nats_server = start_nats(state, credentials, args.nats_cluster)
        servers.append(nats_server)
        env["SBX_NATS_URL"] = nats_server.url
        if args.nats_cluster > 0:
            env["SBX_STREAM_REPLICAS"] = os.environ.get("SBX_STREAM_REPLICAS", str(min(args.nats_cluster, 3)))
        say("devstack", f"embedded NATS JetStream on {nats_server.url} (a user per service)")
        if isinstance(nats_server, EmbeddedNatsCluster):
            monitors = ", ".join(f"http://127.0.0.1:{port}" for port in nats_server.monitor_ports)
            say("devstack", f"a cluster of {args.nats_cluster}, monitoring (/jsz, /routez) on {monitors}")
    if not os.environ.get("SBX_DATABASE_URL"):
        pg = EmbeddedPostgres(state / "postgres", port=int(os.environ.get("SBX_EMBEDDED_PG_PORT", "5433")))
        servers.append(pg.start())
        env["SBX_DATABASE_URL"] = pg.url
        say("devstack", f"embedded PostgreSQL on 127.0.0.1:{pg.port}")

    os.environ.update(env)
    settings = CommonSettings()
    if "migrate" in nats_env:
        settings = settings.model_copy(
            update={
                "nats_user": nats_env["migrate"]["SBX_NATS_USER"],
                "nats_password": SecretStr(nats_env["migrate"]["SBX_NATS_PASSWORD"]),
            }
        )
    asyncio.run(migrate(settings))
    say("devstack", "migrations and stream topology applied")

    processes: list[ServiceProcess] = []
    for name in SERVICES:
        service_env = {**env, **nats_env.get(name, {})}
        if name in DEFAULT_METRICS_PORTS and not os.environ.get("SBX_METRICS_PORT"):
            service_env["SBX_METRICS_PORT"] = str(DEFAULT_METRICS_PORTS[name])
        processes.append(ServiceProcess(name, service_env, sink=say).start())
    engines: list[DockerEngine] = []
    try:
        start_extra_hosts(args.hosts, env, nats_env, engines, processes)
    except Exception:
        for proc in processes:
            proc.stop()
        for engine in engines:
            engine.stop()
        raise
    host = os.environ.get("SBX_API_HOST", "127.0.0.1")
    port = os.environ.get("SBX_API_PORT", "3001")
    say("devstack", f"API on http://{host}:{port}, dashboard on http://{host}:{port}/ui/ (Ctrl-C to stop)")

    stopping = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        while not stopping.is_set():
            for proc in processes:
                if not proc.running:
                    say("devstack", f"{proc.name} exited; restarting it")
                    time.sleep(1)
                    proc.start()
            stopping.wait(1.0)
    finally:
        say("devstack", "stopping")
        # The API first (no new requests), the orchestrator last among services.
        for proc in processes:
            proc.stop()
        for engine in engines:
            engine.stop()
        for server in reversed(servers):
            server.stop()
        say("devstack", "stopped")
