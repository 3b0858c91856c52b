"""A throwaway platform for benchmarks: embedded NATS and PostgreSQL plus the five services."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import docker.errors
from sbx_common import db, topology
from sbx_common.labels import HOLDER_INSTANCE, SNAPSHOT_ID, instance_filter
from sbx_devstack.servers import EmbeddedPostgres

from tests.support.docker import build_test_image, remove_instance_network
from tests.support.nats_auth import admin_connect
from tests.support.nats_auth import nats_server as test_nats
from tests.support.platform import Platform, platform_env


async def _prepare(database_url: str, nats_url: str) -> None:
    await db.migrate(database_url)
    nc = await admin_connect(nats_url, "bench-setup")
    await topology.apply_topology(nc.jetstream())
    await nc.close()


# The tests' settings that make background work more frequent, put back to their defaults: the
# API's business gauges re-read PostgreSQL every 15 s, not every 0.5 s (which is for tests that
# wait on them), so a benchmark does not time that work beside its own.
DEPLOYED = {"SBX_METRICS_REFRESH_SECONDS": "15"}


def remove_instance_containers(instance: str) -> None:
    """The sandboxes (and the network) a benchmark left, then its snapshot images: none may
    outlive it (or load the next one)."""
    client = docker.from_env()
    try:
        # The sandboxes first, then the network holders they joined (docs/network-holders.md).
        for selector in (instance_filter(instance), [f"{HOLDER_INSTANCE}={instance}"]):
            for container in client.containers.list(all=True, filters={"label": selector}):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    container.remove(force=True)
        images = client.api.images(filters={"label": [*instance_filter(instance), SNAPSHOT_ID]})
        for image in images:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                client.api.remove_image(image["Id"], force=True)
    finally:
        client.close()
    # The instance's bridge network and firewall chains: left behind, each run would hold one of
    # the engine's few address pools until none is left for anyone.
    remove_instance_network(instance)


@contextmanager
def running_platform(
    services: tuple[str, ...] | None = None,
    extra_env: dict[str, str] | None = None,
    service_env: dict[str, dict[str, str]] | None = None,
) -> Iterator[Platform]:
    with tempfile.TemporaryDirectory(prefix="sbx-bench-") as tmp:
        root = Path(tmp)
        nats_server = test_nats(root / "nats").start()
        pg = EmbeddedPostgres(root / "pg").start()
        try:
            asyncio.run(_prepare(pg.url, nats_server.url))
            build_test_image()
            (root / "logs").mkdir()
            plat = Platform(
                base_env={**platform_env(pg.url, nats_server.url), **DEPLOYED, **(extra_env or {})},
                log_dir=root / "logs",
            )
            for name in services or ("orchestrator", "log-shipper", "reaper", "metrics-collector", "api"):
                plat.start_service(name, (service_env or {}).get(name))
            try:
                yield plat
            finally:
                plat.stop_all()
                remove_instance_containers(plat.base_env["SBX_INSTANCE"])
        finally:
            pg.stop()
            nats_server.stop()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) + " |" for r in rows]
    return "\n".join([f"### {title}", "", line, sep, *body, ""])
