"""Operations routes: `/health`, `/health/ready`, `/health/live`, `/metrics` (never rate limited).

Their bodies are plain JSON (no envelope), as monitoring tools expect.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sbx_common.timeutil import rfc3339, utcnow

from sbx_api import metrics as api_metrics
from sbx_api.deps import State
from sbx_api.gauges import Totals
from sbx_api.health import service

router = APIRouter(tags=["operations"])


def _word(ok: bool) -> str:
    return "ok" if ok else "down"


@router.get("/health")
async def health(state: State) -> JSONResponse:
    """`{status, db, nats, docker, timestamp}`; 503 with `status: "degraded"` when any is down."""
    checks = await service.run_checks(state)
    healthy = checks.db and checks.nats and checks.docker
    body = {
        "status": "ok" if healthy else "degraded",
        "db": _word(checks.db),
        "nats": _word(checks.nats),
        "docker": _word(checks.docker),
        "timestamp": rfc3339(utcnow()),
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/health/ready")
async def ready(state: State) -> JSONResponse:
    """Ready to serve: PostgreSQL and NATS reachable (Docker is the orchestrator's concern)."""
    checks = await service.run_checks(state, docker=False)
    is_ready = checks.db and checks.nats
    body: dict[str, object] = {"ready": is_ready}
    if not is_ready:
        body["checks"] = {"db": _word(checks.db), "nats": _word(checks.nats)}
    return JSONResponse(body, status_code=200 if is_ready else 503)


@router.get("/health/live")
async def live() -> JSONResponse:
    """The process is up and its event loop answers."""
    return JSONResponse({"alive": True})


@router.get(
    "/metrics",
    response_class=Response,
    responses={401: {"description": "SBX_METRICS_TOKEN is set and the request does not carry it."}},
)
async def metrics(request: Request, state: State) -> Response:
    """Prometheus text: the process's HTTP metrics plus business gauges (refreshed in the
    background). With SBX_METRICS_TOKEN set, only `Authorization: Bearer <token>` is served."""
    token = state.settings.metrics_token.get_secret_value()
    if token:
        scheme, _, presented = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
            return Response("Unauthorized\n", status_code=401, headers={"WWW-Authenticate": "Bearer"})
    text = api_metrics.exposition()
    totals = state.gauges.totals
    if totals is not None:
        scrape = CollectorRegistry()
        scrape.register(_BusinessGauges(totals))
        text += generate_latest(scrape)
    return Response(text, media_type=CONTENT_TYPE_LATEST)


class _BusinessGauges(Collector):
    """The gauges counted in PostgreSQL, rendered at scrape time. Metric families rather than
    `Gauge` objects: in multiprocess mode a Gauge would leave a file per worker behind."""

    def __init__(self, totals: Totals) -> None:
        self.totals = totals

    def collect(self) -> list[GaugeMetricFamily]:
        t = self.totals
        return [
            GaugeMetricFamily(name, doc, value=value)
            for name, doc, value in (
                ("users_total", "Registered users.", t.users),
                ("environments_total", "Environments that are not deleted.", t.environments),
                ("sandboxes_total", "Sandboxes that are not destroyed or expired.", t.sandboxes),
                ("sandboxes_running", "Sandboxes whose status is running.", t.sandboxes_running),
            )
        ]
