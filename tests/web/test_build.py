"""`make run`'s dashboard build (sbx_devstack.webui): a build is reused while its sources are
unchanged, made again when they change, and a machine without Node.js still starts the
platform, with a warning."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sbx_devstack import run, webui


@pytest.mark.timeout(600)  # the first test of the directory: the build (npm ci and vite) runs here
def test_a_build_is_current_until_its_sources_change(dashboard_dist: Path, tmp_path: Path) -> None:
    assert webui.is_current(dashboard_dist)
    copy = tmp_path / "dist"
    shutil.copytree(dashboard_dist, copy)
    assert webui.is_current(copy)
    (copy / webui.HASH_FILE).write_text("0" * 64 + "\n")  # as if built from other sources
    assert not webui.is_current(copy)
    (copy / webui.HASH_FILE).unlink()  # a build made by hand (npm run build) carries no hash
    assert not webui.is_current(copy)


def test_the_source_hash_covers_the_dashboard_and_the_sdk() -> None:
    files = {
        p.relative_to(webui.REPO).as_posix()
        for root, names in webui._SOURCES.items()
        for p in webui._files(root, names)
    }
    assert "clients/web/src/main.tsx" in files
    assert "clients/web/package-lock.json" in files
    assert "clients/typescript/src/client.ts" in files
    assert not [f for f in files if "/node_modules/" in f or "/dist/" in f]


def test_without_node_the_platform_starts_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    monkeypatch.delenv("SBX_UI_DIR", raising=False)
    monkeypatch.setattr(webui.shutil, "which", lambda _tool: None)
    monkeypatch.setattr(run, "say", lambda _name, line: said.append(line))
    run.prepare_dashboard()  # returns instead of raising: make run goes on
    assert len(said) == 1
    assert "WARNING" in said[0]
    assert "node and npm not found" in said[0]
