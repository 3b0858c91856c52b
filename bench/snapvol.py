"""Snapshots, fork and volumes through the platform versus raw Docker, in the same run.

    uv run python -m bench.snapvol

- snapshot: `docker commit` (pause=True) of a running container against `POST
  /sandboxes/:id/snapshots?wait=true` (answered once the snapshot is `ready`);
- fork: raw `docker commit` + create + start against `POST /sandboxes/:id/replicate
  {"withFilesystem": true}?wait=true`;
- volume I/O: `dd` of 256 MiB (written with `conv=fsync`, read back) inside one sandbox, on a
  volume (loop-mounted ext4 image) and on the container's own filesystem (overlay2), against the
  same `dd` in a raw container on a plain host directory bind-mounted from the same disk (the raw
  baseline), all timed inside the container.
Raw and platform samples alternate.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import docker
import httpx
from docker.models.containers import Container

from bench.stack import median, percentile, running_platform, table
from tests.support.docker import TEST_IMAGE
from tests.support.platform import Platform

ROUNDS = 10
DD_MIB = 256
CPU = 0.5
MEMORY_MIB = 128
SLEEP = ["sh", "-c", "dd if=/dev/urandom of=/state bs=1M count=8 2>/dev/null; exec sleep 3600"]


def raw_snapshot(client: docker.DockerClient, container_id: str) -> tuple[float, str]:
    tag = f"sbx-bench-raw-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    client.api.commit(container_id, repository=tag, tag="latest", pause=True)
    return time.perf_counter() - t0, f"{tag}:latest"


def raw_fork(client: docker.DockerClient, container_id: str) -> tuple[float, list[str], str]:
    t0 = time.perf_counter()
    _, image = raw_snapshot(client, container_id)
    copy = client.containers.create(
        image,
        name=f"sbx-bench-fork-{uuid.uuid4().hex[:8]}",
        nano_cpus=int(CPU * 1e9),
        mem_limit=f"{MEMORY_MIB}m",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        labels={"sbx.bench": "raw"},
    )
    copy.start()
    return time.perf_counter() - t0, [str(copy.id)], image


def timed_in_container(container: Container, command: str) -> float:
    """As `timed_in_sandbox`, in a raw container through Docker's exec."""
    code, output = container.exec_run(["sh", "-c", _timed(command)])
    assert code == 0, output
    assert isinstance(output, bytes)
    started, ended = (float(v) for v in output.decode().split())
    return max(ended - started, 0.01)


def _timed(command: str) -> str:
    return (
        f"a=$(cut -d' ' -f1 /proc/uptime); {command} 2>/dev/null; b=$(cut -d' ' -f1 /proc/uptime); echo $a $b"
    )


async def timed_in_sandbox(http: httpx.AsyncClient, sandbox_id: str, command: str) -> float:
    """Seconds `command` took inside the sandbox (`/proc/uptime`, 10 ms resolution)."""
    result = await http.post(
        f"/sandboxes/{sandbox_id}/exec", json={"command": _timed(command), "timeoutSeconds": 120}
    )
    data = result.json()["data"]
    assert data["exitCode"] == 0, result.text
    started, ended = (float(v) for v in data["stdout"].split())
    return max(ended - started, 0.01)


async def interleaved_run(
    plat: Platform,
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, float]]:
    client = docker.from_env()
    raw: dict[str, list[float]] = {"snapshot": [], "fork": []}
    ours: dict[str, list[float]] = {"snapshot": [], "fork": []}
    io: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=plat.api_url, timeout=180) as http:
        signup = await http.post(
            "/auth/signup",
            json={"email": f"bench-{uuid.uuid4().hex[:8]}@example.com", "password": "benchmark-pw"},
        )
        http.headers["Authorization"] = f"Bearer {signup.json()['data']['token']}"
        env = await http.post(
            "/environments",
            json={"name": "bench", "image": TEST_IMAGE, "cpu": CPU, "memory": MEMORY_MIB, "command": SLEEP},
        )
        env_id = env.json()["data"]["id"]
        volume = (await http.post("/volumes", json={"name": "bench", "sizeMiB": 512})).json()["data"]
        created = await http.post(
            "/sandboxes?wait=true&timeout=60",
            json={"environmentId": env_id, "volumes": [{"volumeId": volume["id"], "mountPath": "/vol"}]},
        )
        sandbox = created.json()["data"]
        assert sandbox["status"] == "running", sandbox
        raw_source = client.containers.run(
            TEST_IMAGE,
            SLEEP,
            detach=True,
            name=f"sbx-bench-src-{uuid.uuid4().hex[:8]}",
            labels={"sbx.bench": "raw"},
        )
        images: list[str] = []
        containers: list[str] = []
        try:
            for _ in range(ROUNDS):
                elapsed, image = await asyncio.to_thread(raw_snapshot, client, str(raw_source.id))
                raw["snapshot"].append(elapsed)
                images.append(image)
                t0 = time.perf_counter()
                answer = await http.post(
                    f"/sandboxes/{sandbox['id']}/snapshots?wait=true&timeout=120", json={}
                )
                ours["snapshot"].append(time.perf_counter() - t0)
                snap = answer.json()["data"]
                assert snap["status"] == "ready", snap
                await http.delete(f"/snapshots/{snap['id']}")

                elapsed, made, image = await asyncio.to_thread(raw_fork, client, str(raw_source.id))
                raw["fork"].append(elapsed)
                containers += made
                images.append(image)
                t0 = time.perf_counter()
                fork = await http.post(
                    f"/sandboxes/{sandbox['id']}/replicate?wait=true&timeout=120",
                    json={"withFilesystem": True},
                )
                ours["fork"].append(time.perf_counter() - t0)
                copy = fork.json()["data"]
                assert copy["status"] == "running", copy
                await http.delete(f"/sandboxes/{copy['id']}?wait=true&timeout=60")

            # busybox dd prints no rate: timed inside the container.
            io.update(await volume_io(client, http, sandbox["id"]))
        finally:
            for container_id in containers:
                client.api.remove_container(container_id, force=True)
            raw_source.remove(force=True)
            for image in images:
                client.api.remove_image(image, force=True)
            await http.delete(f"/sandboxes/{sandbox['id']}?wait=true&timeout=60")
            await http.delete(f"/volumes/{volume['id']}")
    client.close()
    return raw, ours, io


async def volume_io(
    client: docker.DockerClient, http: httpx.AsyncClient, sandbox_id: str
) -> dict[str, float]:
    """MiB/s of `dd` on the sandbox's volume and own filesystem, and in a raw container of the
    same image and limits on a plain directory of the host's temporary disk (where the
    platform's volume images live in this run)."""
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="sbx-bench-plain-") as plain:
        raw = client.containers.run(
            TEST_IMAGE,
            ["sleep", "3600"],
            detach=True,
            name=f"sbx-bench-dd-{uuid.uuid4().hex[:8]}",
            nano_cpus=int(CPU * 1e9),
            mem_limit=f"{MEMORY_MIB}m",
            volumes={str(Path(plain)): {"bind": "/plain", "mode": "rw"}},
            labels={"sbx.bench": "raw"},
        )
        try:
            places = (
                ("a plain directory (raw container, bind mount)", "/plain/dd", None),
                ("the volume (loop-mounted ext4 image)", "/vol/dd", sandbox_id),
                ("the container's own filesystem (overlay2)", "/bench-dd", sandbox_id),
            )
            for where, path, in_sandbox in places:
                write = f"dd if=/dev/zero of={path} bs=1M count={DD_MIB} conv=fsync"
                read = f"dd if={path} of=/dev/null bs=1M"
                writes: list[float] = []
                reads: list[float] = []
                for _ in range(3):
                    for command, into in ((write, writes), (read, reads), (f"rm -f {path}", None)):
                        if in_sandbox is None:
                            seconds = await asyncio.to_thread(timed_in_container, raw, command)
                        else:
                            seconds = await timed_in_sandbox(http, in_sandbox, command)
                        if into is not None:
                            into.append(DD_MIB / seconds)
                rates[f"write (conv=fsync) on {where}"] = median(writes)
                rates[f"read (page cache) on {where}"] = median(reads)
        finally:
            raw.remove(force=True)
    return rates


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def run() -> str:
    with running_platform(extra_env={"SBX_MAX_SNAPSHOTS_PER_USER": "1000"}) as plat:
        raw, ours, io = asyncio.run(interleaved_run(plat))
    rows = []
    for key, label in (
        ("snapshot", "snapshot of a running sandbox"),
        ("fork", "fork (commit + create + start)"),
    ):
        rows.append(
            [
                label,
                ms(median(raw[key])),
                ms(percentile(raw[key], 95)),
                ms(median(ours[key])),
                ms(percentile(ours[key], 95)),
                f"{median(ours[key]) / median(raw[key]):.2f}x",
            ]
        )
    out = table(
        f"Snapshots and fork ({ROUNDS} rounds)",
        ["operation", "raw p50", "raw p95", "platform p50", "platform p95", "p50 ratio"],
        rows,
    )
    out += "\n" + table(
        f"Volume I/O inside a sandbox (dd {DD_MIB} MiB, median of 3)",
        ["operation", "MiB/s"],
        [[key, f"{value:.1f}"] for key, value in io.items()],
    )
    return out


if __name__ == "__main__":
    print(run())
