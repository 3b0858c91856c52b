"""docs/asyncapi.json is FastStream's AsyncAPI document of the subjects, and up to date."""

from __future__ import annotations

import json
from typing import Any

from sbx_devstack import asyncapi

from tests.deploy.conftest import ROOT


def test_committed_document_is_what_make_asyncapi_generates() -> None:
    committed = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
    assert committed == asyncapi.document(), "docs/asyncapi.json is stale: run `make asyncapi`"


def test_document_covers_commands_events_logs_dead_letters_and_rpc() -> None:
    doc: dict[str, Any] = asyncapi.document()
    assert doc["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert {
        "sbx.cmd.{host_id}.sandbox.{verb}",
        "sbx.evt.{owner_id}.{sandbox_id}.{status}",
        "sbx.dlq.{verb}",
        "sbx.log.{sandbox_id}",
        "sbx.rpc.{host_id}.exec",
        "sbx.rpc.{host_id}.terminal.open",
        "sbx.rpc.orchestrator.health",
    } <= addresses
    schemas = doc["components"]["schemas"]
    messages = {"SandboxCommand", "SandboxEvent", "DeadLetter", "LogBatch", "ExecRequest", "TerminalControl"}
    assert messages <= set(schemas)
    # Field names as they travel: camelCase.
    assert {"sandboxId", "ownerId", "occurredAt"} <= set(schemas["SandboxCommand"]["properties"])
    actions = {op["action"] for op in doc["operations"].values()}
    assert actions == {"send", "receive"}
