"""Real infrastructure for the tests: embedded NATS and PostgreSQL, the local Docker engine,
and the platform's services as real processes."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sbx_devstack.processes import ServiceProcess
from sbx_devstack.servers import free_port, wait_for_port

TEST_IMAGE = "sbx-test-busybox:latest"
IMAGES_DIR = Path(__file__).parent / "images"
PLATFORM_LABEL = "sbx.platform"
TEST_INSTANCE = f"test-{uuid.uuid4().hex[:10]}"


def docker_available() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def build_test_image() -> str:
    """Build the busybox test image from the static busybox binary (no registry needed)."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    with tempfile.TemporaryDirectory() as context:
        shutil.copy(IMAGES_DIR / "busybox" / "Dockerfile", Path(context) / "Dockerfile")
        shutil.copy(busybox, Path(context) / "busybox")
        subprocess.run(
            ["docker", "build", "-q", "-t", TEST_IMAGE, context],
            check=True,
            capture_output=True,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )
    return TEST_IMAGE


@dataclass
class Platform:
    """The five services running as processes against the test NATS and PostgreSQL."""

    base_env: dict[str, str]
    log_dir: Path
    api_port: int = 0
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    ops_ports: dict[str, int] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.api_port}"

    def start_service(self, name: str, extra_env: dict[str, str] | None = None) -> ServiceProcess:
        env = dict(self.base_env)
        if name == "api":
            self.api_port = self.api_port or free_port()
            env["SBX_API_PORT"] = str(self.api_port)
        else:
            self.ops_ports.setdefault(name, free_port())
            env["SBX_METRICS_PORT"] = str(self.ops_ports[name])
        env.update(extra_env or {})
        proc = ServiceProcess(name, env, log_file=self.log_dir / f"{name}.log").start()
        self.processes[name] = proc
        port = self.api_port if name == "api" else self.ops_ports[name]
        wait_for_port(port, timeout=30)
        return proc

    def stop_service(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is not None:
            proc.stop()

    def kill_service(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is not None:
            proc.kill()

    def restart_service(self, name: str) -> ServiceProcess:
        self.stop_service(name)
        return self.start_service(name)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop_service(name)

    def logs(self, name: str | None = None) -> str:
        """Everything the service(s) logged so far (used to check that secrets never leak)."""
        files = [self.log_dir / f"{name}.log"] if name else sorted(self.log_dir.glob("*.log"))
        return "".join(f.read_text(errors="replace") for f in files if f.exists())


def platform_env(database_url: str, nats_url: str) -> dict[str, str]:
    return {
        "SBX_DATABASE_URL": database_url,
        "SBX_NATS_URL": nats_url,
        "SBX_JWT_SECRET": secrets.token_urlsafe(48),
        "SBX_SECRETS_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "SBX_LOG_LEVEL": "INFO",
        # A name of its own, so that this run's reaper and clean-up never touch containers of
        # another installation on the same Docker engine.
        "SBX_INSTANCE": TEST_INSTANCE,
        # Every test signs up its own users from one IP: the auth limit is raised for the shared
        # platform; the rate-limit tests start an API of their own with the defaults.
        "SBX_AUTH_RATE_LIMIT": "100000",
        "SBX_RATE_LIMIT_PER_MINUTE": "100000",
        "SBX_SANDBOX_CREATE_RATE_LIMIT": "100000",
    }


@dataclass
class User:
    id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def signup(client: httpx.AsyncClient, password: str = "correct horse battery") -> User:
    email = f"user-{uuid.uuid4().hex[:12]}@example.com"
    response = await client.post("/auth/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    return User(id=data["user"]["id"], email=email, token=data["token"])


async def wait_for(predicate_coro_factory, timeout: float = 30.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll an async predicate until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await predicate_coro_factory()
        if last:
            return last
        await _sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
