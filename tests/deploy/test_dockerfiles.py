"""One Dockerfile per service: built with uv from the host's wheelhouse, run as a non-root user."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.deploy.conftest import INFRA, OPS_PORTS, ROOT, SERVICES


@pytest.mark.parametrize("name", SERVICES)
def test_dockerfile_installs_offline_with_uv_and_runs_as_non_root(name: str) -> None:
    text = (INFRA / "docker" / f"{name}.Dockerfile").read_text()
    assert "uv pip install" in text
    assert "--offline" in text
    assert "--no-index" in text
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users, "the image must switch to a non-root user"
    assert users[-1].split(":")[0] not in ("root", "0")
    scripts = tomllib.loads((ROOT / "services" / name / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint = re.search(r'^ENTRYPOINT \["([^"]+)"\]', text, flags=re.MULTILINE)
    assert entrypoint is not None
    assert entrypoint.group(1) in scripts
    assert f"EXPOSE {OPS_PORTS[name]}" in text
