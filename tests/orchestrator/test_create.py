"""A create command becomes a hardened, running container."""

from __future__ import annotations

import httpx

from tests.orchestrator.driver import OrchestratorDriver, statuses
from tests.support.platform import Platform

MIB = 1024 * 1024
SECRET_VALUE = "s3cret-value-that-must-never-leak"
HTTPD = [
    "sh",
    "-c",
    "mkdir -p /www && echo hello-from-sandbox > /www/index.html && exec httpd -f -p 8080 -h /www",
]


async def test_create_runs_a_hardened_container_with_env_secrets_and_ports(
    driver: OrchestratorDriver, platform: Platform
) -> None:
    owner = await driver.create_user()
    environment = await driver.create_environment(
        owner,
        cpu=0.5,
        memory=64,
        ports=[{"container": 8080}],
        env={"GREETING": "hello", "SHARED": "from-environment"},
        command=HTTPD,
    )
    await driver.set_secret(environment, "API_TOKEN", SECRET_VALUE)
    await driver.set_secret(environment, "SHARED", "secret-wins")
    sandbox = await driver.start_sandbox(owner, environment, env={"GREETING": "override", "EXTRA": "1"})

    row = await driver.wait_settled(sandbox, "running")
    assert row["status_reason"] is None
    assert row["started_at"] is not None
    assert row["applied_command_id"] == sandbox.create.id

    info = driver.inspect(sandbox)
    assert info is not None
    assert info["Id"] == row["container_id"]
    host = info["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 64 * MIB
    assert host["MemorySwap"] == 64 * MIB
    assert host["PidsLimit"] == 256
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Privileged"] is False
    assert not host.get("Binds")
    # No host path: only the in-sandbox agent's named volume, read-only (docs/agent.md).
    agent = info["Config"]["Labels"]["sbx.agent"]
    assert [(m["Type"], m["Name"], m["Destination"], m["RW"]) for m in info["Mounts"]] == [
        ("volume", f"sbx-agent-{agent}", "/.sbx", False)
    ]
    assert info["Config"]["Labels"] == {
        "sbx.platform": "sandbox-platform",
        "sbx.instance": platform.base_env["SBX_INSTANCE"],
        "sbx.sandbox-id": str(sandbox.id),
        "sbx.owner-id": str(owner),
        "sbx.disk-mib": "2048",  # the version's `disk`, for the disk watcher
        "sbx.agent": agent,  # the agent build its /.sbx holds
    }
    assert {u["Name"] for u in host["Ulimits"]} == {"nofile", "nproc"}
    assert info["Config"]["Cmd"] == HTTPD

    [endpoint] = row["endpoints"]
    assert endpoint["containerPort"] == 8080
    assert endpoint["url"] == f"http://127.0.0.1:{endpoint['hostPort']}"
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(endpoint["url"])
    assert response.text.strip() == "hello-from-sandbox"

    result = await driver.exec(sandbox, ["env"])
    variables = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert variables["GREETING"] == "override"
    assert variables["EXTRA"] == "1"
    assert variables["API_TOKEN"] == SECRET_VALUE
    assert variables["SHARED"] == "secret-wins"

    events = await driver.events(sandbox, until="running")
    assert statuses(events) == ["starting", "running"]
    assert events[-1].data["endpoints"] == row["endpoints"]
    assert all(e.command_id == sandbox.create.id for e in events)
    assert SECRET_VALUE not in platform.logs()
