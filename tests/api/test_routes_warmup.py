"""A worker prepares every route when it starts, so no request pays for it (sbx_api.routes_warmup)."""

from __future__ import annotations

import fastapi.routing
import pytest
from sbx_api.app import create_app
from sbx_api.config import ApiSettings
from sbx_api.routes_warmup import warm_routes


def test_after_the_warm_up_matching_a_request_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(ApiSettings(jwt_secret="w" * 40))
    assert warm_routes(app) >= 10  # every router of the API (sandboxes, files, processes, ...)

    def build(*_: object, **__: object) -> None:
        raise AssertionError("a route was prepared on a request")

    included = getattr(fastapi.routing, "_IncludedRouter", None)
    if included is not None:
        monkeypatch.setattr(included, "_build_effective_context", build)
    # What matching a request asks of each router: everything is already there.
    assert warm_routes(app) >= 10
