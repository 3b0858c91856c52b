"""Container runtimes: the names users choose, and the names a Docker engine registers them under.

`runc` is Docker's default; `gvisor` is gVisor's `runsc`, registered with the engine as runtime
`runsc` (see the README's set-up). The orchestrator announces which of them its engine offers
(`engine_runtimes`), and the API refuses an environment that asks for one it does not offer.
"""

from __future__ import annotations

from collections.abc import Iterable

RUNC = "runc"
GVISOR = "gvisor"
DEFAULT = RUNC

# Platform name -> the engine's runtime name.
ENGINE_NAMES: dict[str, str] = {RUNC: "runc", GVISOR: "runsc"}


def engine_name(runtime: str) -> str:
    return ENGINE_NAMES[runtime]


def platform_runtimes(engine_runtimes: Iterable[str]) -> list[str]:
    """The platform runtimes an engine offers, from the names in `docker info`'s `Runtimes`."""
    offered = set(engine_runtimes)
    return [name for name, engine in ENGINE_NAMES.items() if name == RUNC or engine in offered]
