"""REF arguments: a full id, a unique prefix of an id, or a name."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import TypeVar

from sandbox_platform.client import Client, Sandbox
from sandbox_platform.errors import NotFoundError, SandboxPlatformError
from sandbox_platform.models import Environment, Volume

T = TypeVar("T")

#: Every status, so that a REF also finds destroyed and expired sandboxes.
ALL_STATUSES = (
    "pending",
    "starting",
    "running",
    "stopping",
    "stopped",
    "restarting",
    "pausing",
    "paused",
    "resuming",
    "destroying",
    "destroyed",
    "expired",
    "failed",
)


def _is_uuid(ref: str) -> bool:
    try:
        uuid.UUID(ref)
    except ValueError:
        return False
    return True


def _pick(
    ref: str, kind: str, items: Iterable[T], ident: Callable[[T], str], name: Callable[[T], str]
) -> T | None:
    """The one item whose name is `ref`, else whose id starts with `ref`; None when none does."""
    candidates = list(items)
    by_name = [item for item in candidates if name(item) == ref]
    by_prefix = [item for item in candidates if ident(item).startswith(ref.lower())]
    for matches in (by_name, by_prefix):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            listed = ", ".join(f"{name(m)} ({ident(m)[:8]})" for m in matches[:5])
            raise SandboxPlatformError("AMBIGUOUS", None, f"{ref!r} matches several {kind}s: {listed}.")
    return None


def sandbox(client: Client, ref: str) -> Sandbox:
    """The sandbox a REF names (the sandboxes not destroyed are searched first)."""
    if _is_uuid(ref):
        return client.sandboxes.get(ref)
    for statuses in (None, ALL_STATUSES):
        found = _pick(
            ref, "sandbox", client.sandboxes.list(status=statuses), lambda s: s.id, lambda s: s.name
        )
        if found is not None:
            return found
    raise NotFoundError("NOT_FOUND", None, f"No sandbox is named {ref!r} or has an id starting with it.")


def environment(client: Client, ref: str) -> Environment:
    """The environment a REF names."""
    if _is_uuid(ref):
        return client.environments.get(ref)
    found = _pick(ref, "environment", client.environments.list(), lambda e: e.id, lambda e: e.name)
    if found is None:
        raise NotFoundError(
            "NOT_FOUND", None, f"No environment is named {ref!r} or has an id starting with it."
        )
    return found


def volume(client: Client, ref: str) -> Volume:
    """The volume a REF names."""
    if _is_uuid(ref):
        return client.volumes.get(ref)
    found = _pick(ref, "volume", client.volumes.list(), lambda v: v.id, lambda v: v.name)
    if found is None:
        raise NotFoundError("NOT_FOUND", None, f"No volume is named {ref!r} or has an id starting with it.")
    return found
