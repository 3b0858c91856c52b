"""File upload and download through the API against `docker cp`, in the same run.

    uv run python -m bench.files [--sizes 100,1024]

For each size (MiB): a file of random bytes on the host is uploaded with `PUT
/sandboxes/:id/files/content` and downloaded with `GET .../content` by `curl` (streamed from and
to disk), and copied in and out with `docker cp` into the same running sandbox. Then the
latency of a stat and a listing through the API beside one `docker exec stat`. Raw
and platform runs alternate. Beside the times, each service's peak resident memory during the
platform's transfers over its idle figure (sampled from /proc every 20 ms): the bytes are
streamed, so it stays flat whatever the size.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from bench.stack import median, running_platform, table
from tests.support.docker import TEST_IMAGE
from tests.support.platform import Platform
from tests.support.processes import tree_cpu_seconds, tree_rss

MIB = 1024 * 1024
ROUNDS = 5
READ_CHUNK = MIB
SERVICES = ("api", "orchestrator")


class RssSampler:
    """Peak RSS of some processes while a block runs, on a thread of its own."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.idle = {name: tree_rss(pid) for name, pid in pids.items()}
        self.peak = dict(self.idle)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], tree_rss(pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def growth_mib(self, name: str) -> float:
        return (self.peak[name] - self.idle[name]) / MIB


def named_pid(name: str) -> int | None:
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == name:
            return int(process.pid)
    return None


class CpuMeter:
    """CPU seconds each process (tree) spends while a block runs; `client` is this benchmark's
    own children (curl, the docker CLI)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.spent: dict[str, float] = dict.fromkeys([*pids, "client"], 0.0)

    def _now(self) -> dict[str, float]:
        now = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        now["client"] = usage.ru_utime + usage.ru_stime
        return now

    @contextlib.contextmanager
    def measuring(self) -> Iterator[None]:
        before = self._now()
        yield
        after = self._now()
        for name in self.spent:
            self.spent[name] += after[name] - before[name]


def pids_of(plat: Platform) -> dict[str, int]:
    pids = {}
    for name in SERVICES:
        process = plat.processes[name].process
        assert process is not None
        pids[name] = process.pid
    return pids


def _curl(http: httpx.AsyncClient, *args: str) -> float:
    """`curl` as the HTTP client: a compiled client like `docker cp`'s, so the times are the
    platform's rather than a Python client's."""
    token = http.headers["Authorization"]
    t0 = time.perf_counter()
    subprocess.run(["curl", "-sSf", "-H", f"Authorization: {token}", *args], check=True, capture_output=True)
    return time.perf_counter() - t0


async def upload(http: httpx.AsyncClient, sandbox_id: str, source: Path, target: str) -> float:
    url = f"{str(http.base_url).rstrip('/')}/sandboxes/{sandbox_id}/files/content?path={target}"
    return await asyncio.to_thread(_curl, http, "-T", str(source), url, "-o", "/dev/null")


async def download(http: httpx.AsyncClient, sandbox_id: str, source: str, target: Path) -> float:
    url = f"{str(http.base_url).rstrip('/')}/sandboxes/{sandbox_id}/files/content?path={source}"
    return await asyncio.to_thread(_curl, http, url, "-o", str(target))


def docker_cp(source: str, target: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["docker", "cp", source, target], check=True, capture_output=True)
    return time.perf_counter() - t0


SMALL_ROUNDS = 20


async def small_operations(http: httpx.AsyncClient, sandbox_id: str, container: str) -> list[list[str]]:
    """Median latency of a stat and a listing through the API (the agent when the sandbox has
    it) beside one `docker exec stat` of the same path (the raw cost of a Docker exec)."""
    files = f"/sandboxes/{sandbox_id}/files"
    rows = []
    for name, path, params in (
        ("stat", f"{files}/stat", {"path": "/etc"}),
        ("list /etc", files, {"path": "/etc"}),
    ):
        api, raw = [], []
        for _ in range(SMALL_ROUNDS):
            t0 = time.perf_counter()
            (await http.get(path, params=params)).raise_for_status()
            api.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run(["docker", "exec", container, "stat", "/etc"], check=True, capture_output=True)
            raw.append(time.perf_counter() - t0)
        a, r = median(api), median(raw)
        rows.append(
            [
                f"{name} (median of {SMALL_ROUNDS})",
                f"{a * 1000:.1f} ms",
                f"{r * 1000:.1f} ms (docker exec)",
                f"{r / a:.2f}x",
            ]
        )
    return rows


async def measure(plat: Platform, sizes: list[int]) -> str:
    async with plat.client(timeout=600) as http:
        signup = await http.post(
            "/auth/signup", json={"email": "bench-files@example.com", "password": "benchmark-pw"}
        )
        http.headers["Authorization"] = f"Bearer {signup.json()['data']['token']}"
        env = await http.post(
            "/environments",
            json={
                "name": "bench-files",
                "image": TEST_IMAGE,
                "cpu": 1,
                "memory": 256,
                "disk": 8192,
                "command": ["sh", "-c", "exec sleep 3600"],
            },
        )
        env.raise_for_status()
        created = await http.post(
            "/sandboxes?wait=true&timeout=60", json={"environmentId": env.json()["data"]["id"]}
        )
        created.raise_for_status()
        sandbox_id = created.json()["data"]["id"]
        container = f"sbx-{sandbox_id}"
        rows: list[list[str]] = []
        cpu_rows: list[list[str]] = []
        cpu_pids = dict(pids_of(plat))
        for name in ("nats-server", "dockerd"):
            if (pid := named_pid(name)) is not None:
                cpu_pids[name] = pid
        growth: dict[str, float] = dict.fromkeys(SERVICES, 0.0)
        with tempfile.TemporaryDirectory(prefix="sbx-bench-files-") as tmp:
            # Once before timing: the sandbox's first file operation opens the orchestrator's
            # session with its agent (about 50 ms, once per sandbox), and `docker cp` is warm too.
            warm = Path(tmp) / "warm"
            warm.write_bytes(os.urandom(MIB))
            for _ in range(2):
                await upload(http, sandbox_id, warm, "/warm.bin")
                await download(http, sandbox_id, "/warm.bin", Path(tmp) / "warm-back")
            docker_cp(str(warm), f"{container}:/warm.bin")
            for size in sizes:
                source = Path(tmp) / f"source-{size}"
                with source.open("wb") as out:
                    for _ in range(size):
                        out.write(os.urandom(MIB))
                back = Path(tmp) / "back"
                times: dict[str, list[float]] = {"up": [], "down": [], "cp_in": [], "cp_out": []}
                meters = {key: CpuMeter(cpu_pids) for key in times}
                for _ in range(ROUNDS):
                    with meters["cp_in"].measuring():
                        times["cp_in"].append(docker_cp(str(source), f"{container}:/raw.bin"))
                    with meters["cp_out"].measuring():
                        times["cp_out"].append(docker_cp(f"{container}:/raw.bin", str(back)))
                    back.unlink()
                    with RssSampler(pids_of(plat)) as sampler:
                        with meters["up"].measuring():
                            times["up"].append(await upload(http, sandbox_id, source, "/api.bin"))
                        with meters["down"].measuring():
                            times["down"].append(await download(http, sandbox_id, "/api.bin", back))
                    for name in SERVICES:
                        growth[name] = max(growth[name], sampler.growth_mib(name))
                    if back.stat().st_size != source.stat().st_size:
                        raise RuntimeError("the download's size differs from the upload's")
                    back.unlink()
                source.unlink()
                for key, label in (
                    ("up", "upload, API"),
                    ("cp_in", "docker cp in"),
                    ("down", "download, API"),
                    ("cp_out", "docker cp out"),
                ):
                    per = 100 / (size * ROUNDS)
                    cpu_rows.append(
                        [f"{label}, {size} MiB"]
                        + [f"{meters[key].spent[name] * per:.2f}" for name in [*cpu_pids, "client"]]
                    )
                for direction, api_key, raw_key in (
                    ("upload", "up", "cp_in"),
                    ("download", "down", "cp_out"),
                ):
                    api, raw = median(times[api_key]), median(times[raw_key])
                    rows.append(
                        [
                            f"{direction} {size} MiB",
                            f"{size / api:.0f} MiB/s ({api:.2f} s)",
                            f"{size / raw:.0f} MiB/s ({raw:.2f} s)",
                            f"{raw / api:.2f}x",
                        ]
                    )
        rows += await small_operations(http, sandbox_id, container)
        await http.delete(f"/sandboxes/{sandbox_id}?wait=true")
    memory = ", ".join(f"{name} +{growth[name]:.0f} MiB" for name in SERVICES)
    return (
        table(
            f"Files: API vs docker cp (median of {ROUNDS}; peak RSS over idle during the API's"
            f" transfers: {memory})",
            ["transfer", "API", "docker cp", "API / raw"],
            rows,
        )
        + "\n"
        + table(
            "CPU seconds per 100 MiB moved, by process (client: curl or the docker CLI)",
            ["copy", *cpu_pids, "client"],
            cpu_rows,
        )
    )


def run(sizes: list[int] | None = None) -> str:
    extra = {"SBX_MAX_UPLOAD_BYTES": str(4 * 1024 * MIB)}
    with running_platform(services=("orchestrator", "api"), extra_env=extra) as plat:
        return asyncio.run(measure(plat, sizes or [100, 1024]))


if __name__ == "__main__":
    chosen = (
        [int(s) for s in sys.argv[sys.argv.index("--sizes") + 1].split(",")]
        if "--sizes" in sys.argv
        else None
    )
    print(run(chosen))
