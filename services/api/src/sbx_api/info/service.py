"""What this installation offers (`GET /info`), and the runtime check of environment definitions."""

from __future__ import annotations

from sbx_common.errors import ValidationFailed

from sbx_api.environments.schemas import MAX_DISK_MIB, MIN_DISK_MIB
from sbx_api.info.schemas import InfoLimits, InfoOut
from sbx_api.state import AppState

FEATURES = ["environment.runtime", "environment.disk"]


async def platform_info(state: AppState, version: str) -> InfoOut:
    offer = await state.engine_offer.get(state.nc)
    settings = state.settings
    disk_limit = offer.disk_limit if offer.disk_limit in ("quota", "watch") else None
    return InfoOut(
        version=version,
        runtimes=offer.runtimes,
        features=FEATURES,
        limits=InfoLimits(
            max_body_bytes=settings.max_body_bytes,
            default_disk_mib=settings.default_disk_mb,
            min_disk_mib=MIN_DISK_MIB,
            max_disk_mib=MAX_DISK_MIB,
            max_sandboxes_per_user=settings.max_sandboxes_per_user,
            max_environments_per_user=settings.max_environments_per_user,
        ),
        disk_limit=disk_limit,
    )


async def check_runtime(state: AppState, runtime: str) -> None:
    """400 naming `runtime` unless the engine offers it (as `GET /info` lists)."""
    offered = (await state.engine_offer.get(state.nc)).runtimes
    if runtime not in offered:
        raise ValidationFailed.for_field(
            "runtime", f"This installation offers the runtimes: {', '.join(offered)}."
        )
