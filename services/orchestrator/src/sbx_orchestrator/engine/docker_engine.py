"""The Docker engine, through the synchronous `docker` SDK run in worker threads.

Every call runs in the engine's own thread pool, so a slow Docker call never blocks the event
loop, and failures are counted per operation in `orchestrator_docker_errors_total`. A missing
container or image is an answer (`None` / `False`), not an error.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import docker
import docker.errors
import docker.utils
from sbx_common import labels, runtimes, telemetry

from sbx_orchestrator.config import OrchestratorSettings
from sbx_orchestrator.engine import archive_http
from sbx_orchestrator.engine.containers import ContainerSpec, EngineFeatures
from sbx_orchestrator.metrics import DOCKER_ERRORS

logger = logging.getLogger(__name__)

T = TypeVar("T")

PING_CACHE_SECONDS = 1.0
PING_TIMEOUT = 2.0
GVISOR_CACHE_SIZE = 4096
# Docker's create warning when the kernel has no block I/O weight controller for the disk.
_BLKIO_WARNING = "block i/o weight"
# Docker's create error when `--storage-opt size=` is not available after all (e.g. no pquota).
_STORAGE_OPT_ERROR = "storage-opt"


@dataclass(frozen=True)
class EngineInfo:
    """What `docker info` says matters to the platform: runtimes and the storage driver."""

    runtimes: list[str]  # the platform's names ("runc", "gvisor")
    storage_driver: str
    backing_filesystem: str
    cpus: float = 0.0  # what the engine's host has (`NCPU`, `MemTotal`)
    memory_mib: int = 0

    @property
    def may_limit_storage(self) -> bool:
        """overlay2 enforces `--storage-opt size=` only on xfs (mounted with pquota)."""
        return self.storage_driver == "overlay2" and self.backing_filesystem == "xfs"


def read_engine_info(info: dict[str, Any]) -> EngineInfo:
    driver_status = {str(k): str(v) for k, v in (info.get("DriverStatus") or [])}
    return EngineInfo(
        runtimes=runtimes.platform_runtimes((info.get("Runtimes") or {}).keys()),
        storage_driver=str(info.get("Driver") or ""),
        backing_filesystem=driver_status.get("Backing Filesystem", ""),
        cpus=float(info.get("NCPU") or 0),
        memory_mib=int(info.get("MemTotal") or 0) // (1024 * 1024),
    )


def connect_api(settings: OrchestratorSettings, pool_size: int) -> docker.APIClient:
    """A low-level Docker client: `SBX_DOCKER_HOST`, else DOCKER_HOST / the local socket."""
    kwargs: dict[str, Any] = dict(docker.utils.kwargs_from_env())
    if settings.docker_host:
        kwargs["base_url"] = settings.docker_host
    api = docker.APIClient(
        version="auto", timeout=int(settings.docker_timeout), max_pool_size=pool_size, **kwargs
    )
    if api.base_url.startswith("http+docker://"):
        # A local socket: no proxy applies, so requests need not look for one in the
        # environment on every call (about 8 % of the orchestrator's CPU during a burst of creates).
        api.trust_env = False
    return api


class DockerEngine:
    """Asynchronous facade over the Docker calls the orchestrator makes."""

    def __init__(self, settings: OrchestratorSettings) -> None:
        self.settings = settings
        # Where the bulk bytes of file transfers go without the SDK (archive_http.py).
        env = docker.utils.kwargs_from_env()
        self.archive_endpoint = archive_http.endpoint_of(
            settings.docker_host or env.get("base_url"), tls=bool(env.get("tls"))
        )
        self._api: docker.APIClient | None = None
        self._connect_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(settings.docker_threads, thread_name_prefix="docker")
        self._ping_at = 0.0
        self._ping_ok = False
        self._ping_lock = asyncio.Lock()
        self._info: EngineInfo | None = None
        self._info_at = 0.0
        # Container id -> whether it runs under gVisor (bounded: oldest forgotten first).
        self._gvisor: dict[str, bool] = {}
        # Learnt from the engine's answers: None while untried.
        self._storage_quota_works: bool | None = None
        self._blkio_weight_works: bool | None = None

    @property
    def api(self) -> docker.APIClient:
        """The SDK client; raises while the engine has not been reached yet (see `ping`)."""
        if self._api is None:
            raise docker.errors.DockerException("the Docker engine has not been reached yet")
        return self._api

    def _connect(self) -> docker.APIClient:
        # The client asks the engine for its API version when it is made, so it is made only
        # once the engine answers: the service starts (not ready) while Docker is down.
        with self._connect_lock:
            if self._api is None:
                pool_size = self.settings.docker_threads + self.settings.exec_threads + 4
                self._api = connect_api(self.settings, pool_size)
                logger.info("connected to the docker engine")
            return self._api

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._api is not None:
            self._api.close()

    async def call(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one SDK call in a worker thread; count it if it fails (other than "not found").
        Within a trace (a command, an exec) the call is a child span `docker <operation>`."""
        loop = asyncio.get_running_loop()
        with telemetry.child_span(f"docker {operation}", {"docker.operation": operation}):
            try:
                return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
            except docker.errors.NotFound:
                raise
            except Exception:
                DOCKER_ERRORS.labels(operation).inc()
                raise

    # --- health ---

    async def ping(self) -> bool:
        """Whether the engine answers; cached for a second so health checks stay cheap."""
        async with self._ping_lock:
            if time.monotonic() - self._ping_at > PING_CACHE_SECONDS:
                was_ok = self._ping_ok
                try:
                    self._ping_ok = await asyncio.wait_for(self.call("ping", self._ping), PING_TIMEOUT)
                except Exception as exc:
                    self._ping_ok = False
                    if was_ok or self._ping_at == 0.0:  # log the change, not every failed ping
                        logger.warning("docker engine unreachable", extra={"error": repr(exc)})
                else:
                    if not was_ok and self._ping_at != 0.0:
                        logger.info("docker engine reachable again")
                self._ping_at = time.monotonic()
            return self._ping_ok

    def _ping(self) -> bool:
        return bool(self._connect().ping())

    # --- what the engine offers ---

    async def info(self) -> EngineInfo | None:
        """The engine's runtimes and storage driver, re-read every `engine_info_ttl` seconds
        (a runtime registered later, e.g. runsc after a SIGHUP to dockerd, shows up then).
        None while the engine cannot be reached and nothing is known yet."""
        if self._info is None or time.monotonic() - self._info_at > self.settings.engine_info_ttl:
            try:
                raw: dict[str, Any] = await self.call("info", lambda: self._connect().info())
            except Exception as exc:
                logger.warning("docker info failed", extra={"error": repr(exc)})
                return self._info
            self._info = read_engine_info(raw)
            self._info_at = time.monotonic()
        return self._info

    async def features(self) -> EngineFeatures:
        """What a new container can ask the engine to enforce."""
        info = await self.info()
        return EngineFeatures(
            storage_quota=bool(info and info.may_limit_storage) and self._storage_quota_works is not False,
            blkio_weight=self._blkio_weight_works is not False,
        )

    async def runs_gvisor(self, container_id: str) -> bool:
        """Whether a container runs under gVisor's runsc (remembered per container)."""
        if container_id not in self._gvisor:
            info = await self.inspect(container_id)
            runtime = ((info or {}).get("HostConfig") or {}).get("Runtime")
            if len(self._gvisor) >= GVISOR_CACHE_SIZE:
                del self._gvisor[next(iter(self._gvisor))]
            self._gvisor[container_id] = runtime == runtimes.engine_name(runtimes.GVISOR)
        return self._gvisor[container_id]

    async def upper_dir(self, container_id: str) -> str | None:
        """The host directory holding a container's writable layer (overlay2), else None."""
        info = await self.inspect(container_id)
        if info is None:
            return None
        upper = ((info.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")
        return str(upper) if upper else None

    async def layer_size(self, container_id: str) -> int | None:
        """Docker's own measure of a container's writable layer (SizeRw, from a list call with
        `size`: the engine walks the layer), None if the container is gone."""
        found: list[dict[str, Any]] = await self.call(
            "list_size", self.api.containers, all=True, size=True, filters={"id": container_id}
        )
        return int(found[0].get("SizeRw") or 0) if found else None

    # --- images ---

    async def has_image(self, image: str) -> bool:
        try:
            await self.call("inspect_image", self.api.inspect_image, image)
        except docker.errors.NotFound:
            return False
        return True

    async def pull(self, image: str) -> None:
        # The SDK splits "repo:tag" / "repo@digest" itself; a bare name means "latest". A pull
        # has no socket timeout (it streams), hence the overall limit.
        await asyncio.wait_for(self.call("pull", self.api.pull, image), self.settings.image_pull_timeout)

    async def commit(self, container_id: str, image: str, image_labels: dict[str, str]) -> dict[str, Any]:
        """Commit a container's filesystem to `image` ("repo:tag"). A running container is frozen
        (cgroup freezer) for the moment of the commit only, so its files are consistent."""
        repository, _, tag = image.rpartition(":")
        await self.call(
            "commit",
            self.api.commit,
            container_id,
            repository=repository,
            tag=tag,
            pause=True,
            conf={"Labels": image_labels},
        )
        info: dict[str, Any] = await self.call("inspect_image", self.api.inspect_image, image)
        return info

    async def remove_image(self, image: str) -> bool:
        """Remove an image (untagged even while a container made from it exists); False when
        there was none."""
        try:
            await self.call("remove_image", self.api.remove_image, image, force=True)
        except docker.errors.NotFound:
            return False
        return True

    # --- containers ---

    async def inspect(self, name_or_id: str) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = await self.call("inspect", self.api.inspect_container, name_or_id)
        except docker.errors.NotFound:
            return None
        return info

    async def create(self, spec: ContainerSpec) -> str:
        def create(host: dict[str, Any]) -> dict[str, Any]:
            created: dict[str, Any] = self.api.create_container(
                spec.image,
                command=spec.command,
                name=spec.name,
                environment=spec.environment,
                labels=spec.labels,
                ports=spec.ports or None,
                host_config=self.api.create_host_config(**host),
                detach=True,
            )
            return created

        host = dict(spec.host)
        try:
            created = await self.call("create", create, host)
        except docker.errors.APIError as exc:
            if "storage_opt" not in host or _STORAGE_OPT_ERROR not in str(exc.explanation or exc).lower():
                raise
            # The driver looked able to limit storage but is not (e.g. xfs without pquota): the
            # disk watcher enforces the limit instead, from now on for every sandbox.
            logger.warning("storage-opt size is not supported by the engine; disk limits are watched")
            self._storage_quota_works = False
            del host["storage_opt"]
            created = await self.call("create", create, host)
        else:
            if "storage_opt" in host:
                self._storage_quota_works = True
        warnings = " ".join(str(w) for w in (created.get("Warnings") or [])).lower()
        if "blkio_weight" in host and _BLKIO_WARNING in warnings and self._blkio_weight_works is not False:
            self._blkio_weight_works = False
            logger.warning(
                "block I/O weight is not supported by this kernel; sandboxes run without one",
                extra={"warnings": warnings[:300]},
            )
        return str(created["Id"])

    async def start(self, container_id: str) -> None:
        await self.call("start", self.api.start, container_id)

    async def stop(self, container_id: str, grace: int) -> None:
        """Stop (SIGTERM, then SIGKILL after `grace` seconds); a missing container is stopped."""
        try:
            await self.call("stop", self.api.stop, container_id, timeout=grace)
        except docker.errors.NotFound:
            return

    async def pause(self, container_id: str) -> None:
        """Freeze every process of the container (the cgroup freezer): memory and files stay."""
        await self.call("pause", self.api.pause, container_id)

    async def unpause(self, container_id: str) -> None:
        await self.call("unpause", self.api.unpause, container_id)

    async def restart(self, container_id: str, grace: int) -> None:
        await self.call("restart", self.api.restart, container_id, timeout=grace)

    async def remove(self, name_or_id: str) -> bool:
        """Remove a container and its anonymous volumes; False when there was none."""
        try:
            await self.call("remove", self.api.remove_container, name_or_id, force=True, v=True)
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            # A removal already under way (e.g. a repeated destroy) is not an error.
            if exc.status_code == 409 and "already in progress" in str(exc.explanation):
                return True
            raise
        return True

    async def ensure_network(self, name: str, bridge: str, instance: str) -> None:
        """The platform's bridge network for sandboxes, created once: its own bridge interface
        (named so firewall rules can match it) and no traffic between its containers."""
        found = await self.call("networks", self.api.networks, names=[name])
        if any(n.get("Name") == name for n in found):
            return
        try:
            await self.call(
                "create_network",
                self.api.create_network,
                name,
                driver="bridge",
                options={
                    "com.docker.network.bridge.name": bridge,
                    "com.docker.network.bridge.enable_icc": "false",
                },
                labels={labels.PLATFORM: labels.PLATFORM_VALUE, labels.INSTANCE: instance},
                check_duplicate=True,
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # made meanwhile by a concurrent call
                raise
        logger.info("sandbox network created", extra={"network": name, "bridge": bridge})

    async def instance_containers(self, instance: str) -> list[dict[str, Any]]:
        """Every container (running or not) labelled with this installation's instance."""
        found: list[dict[str, Any]] = await self.call(
            "list",
            self.api.containers,
            all=True,
            filters={"label": labels.instance_filter(instance)},
        )
        return found
