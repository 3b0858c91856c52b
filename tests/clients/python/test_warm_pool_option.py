"""`warm_pool` in the Python SDK and `--warm-pool` in the `sbx` CLI (the pools themselves are
tested in tests/sandboxes/test_warm_pool.py)."""

from __future__ import annotations

import json
import uuid

import pytest
from sandbox_platform import Client
from sandbox_platform.errors import ValidationError

from tests.clients.python.support import PASSWORD, new_email
from tests.clients.python.test_cli import cli_env, ok, runner


def test_sdk_sets_and_reads_warm_pool(sdk: Client, test_image: str) -> None:
    environment = sdk.environments.create(name=f"pool-{uuid.uuid4().hex[:8]}", image=test_image)
    assert environment.warm_pool == 0
    with pytest.raises(ValidationError) as refused:
        sdk.environments.update(environment.id, warm_pool=21)
    assert refused.value.details["errors"][0]["path"] == "warmPool"
    # 0 again right away: a version with a pool would start containers for this test's user.
    assert sdk.environments.update(environment.id, warm_pool=0).warm_pool == 0
    assert [v.warm_pool for v in sdk.environments.versions(environment.id)] == [0, 0]
    sdk.environments.delete(environment.id)


def test_cli_warm_pool_option(
    api_url: str, tmp_path_factory: pytest.TempPathFactory, test_image: str
) -> None:
    run = runner(cli_env(api_url, tmp_path_factory.mktemp("sbx-pool-config")))
    ok(run("signup", "--email", new_email(), "--password", PASSWORD))
    name = f"pool-{uuid.uuid4().hex[:6]}"
    created = json.loads(ok(run("env", "create", name, "--image", test_image, "--warm-pool", "0", "--json")))
    assert created["warmPool"] == 0
    refused = run("env", "update", name, "--warm-pool", "25")
    assert refused.returncode != 0
    assert "warm pool" in ok(run("env", "show", name))
    ok(run("env", "rm", name))
