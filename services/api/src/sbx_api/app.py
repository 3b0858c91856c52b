"""The FastAPI application factory and its lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sbx_common import db, natsconn, tasks
from sbx_common.crypto import SecretBox
from sbx_common.telemetry import tracing_requested

from sbx_api import exception_handlers, openapi
from sbx_api.api_instances import ApiProcess
from sbx_api.api_keys.router import router as api_keys_router
from sbx_api.audit.router import router as audit_router
from sbx_api.auth.router import router as auth_router
from sbx_api.config import ApiSettings
from sbx_api.environments.router import router as environments_router
from sbx_api.files.router import router as files_router
from sbx_api.files.watch import router as files_watch_router
from sbx_api.health.router import router as health_router
from sbx_api.info.router import router as info_router
from sbx_api.middleware import BodySizeLimitMiddleware, RateLimitMiddleware, TraceMiddleware
from sbx_api.ports.hosts import PreviewHostMiddleware
from sbx_api.ports.hosts import parse_template as parse_preview_hosts
from sbx_api.ports.router import router as ports_router
from sbx_api.ports.upstream import UpstreamPool
from sbx_api.processes.router import router as processes_router
from sbx_api.ratelimit import limiter_for
from sbx_api.routes_warmup import warm_routes
from sbx_api.sandboxes.router import router as sandboxes_router
from sbx_api.snapshots.router import router as snapshots_router
from sbx_api.state import AppState
from sbx_api.streams.router import WEBSOCKET_ADDITIONS
from sbx_api.streams.router import router as streams_router
from sbx_api.usage import SharedUsage
from sbx_api.volumes.router import router as volumes_router
from sbx_api.webhooks.router import router as webhooks_router
from sbx_api.webui import install as install_webui

# PostgreSQL connections each worker keeps open (see `lifespan`).
POOL_MIN = 8


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    if len(settings.jwt_secret.get_secret_value()) < 32:
        raise ValueError("SBX_JWT_SECRET must be set to at least 32 characters")
    parse_preview_hosts(settings.preview_url)  # a malformed SBX_PREVIEW_URL stops the start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        secret_box = SecretBox.from_settings(
            settings.secrets_master_key.get_secret_value(), settings.secrets_old_keys.get_secret_value()
        )
        # The API keeps no session state on pooled connections: no reset query on each release.
        # POOL_MIN connections stay open while idle: a burst of requests (ten clients creating
        # sandboxes at once) otherwise opened them while it waited, each costing PostgreSQL a
        # new backend and the worker a connect, a TLS probe and the codecs' type lookups.
        pool = await db.create_pool(
            settings.database_url.get_secret_value(), min_size=POOL_MIN, max_size=20, session_reset=False
        )
        nc = await natsconn.connect_with(settings, "sbx-api")
        process = ApiProcess(pool)
        await process.register()
        limiter = limiter_for(settings.rate_limit_storage, pool)
        app.state.sbx = AppState(
            settings=settings,
            pool=pool,
            nc=nc,
            js=nc.jetstream(),
            secret_box=secret_box,
            limiter=limiter,
            process=process,
            usage=SharedUsage(pool, process.id),
            proxy_pool=UpstreamPool(
                settings.proxy_connect_timeout_seconds, settings.proxy_read_timeout_seconds
            ),
        )
        warm_routes(app)
        background = [
            asyncio.create_task(app.state.sbx.gauges.refresh_forever(pool, settings.metrics_refresh_seconds)),
            asyncio.create_task(process.heartbeat_forever()),
            asyncio.create_task(limiter.prune_forever()),
        ]
        try:
            yield
        finally:
            await tasks.cancel_and_wait(background)
            await app.state.sbx.proxy_pool.aclose()
            await process.unregister()
            await natsconn.drain(nc)
            await pool.close()

    app = FastAPI(
        title="Sandbox Platform API",
        version="0.1.0",
        lifespan=lifespan,
        description="Create, run and watch isolated sandboxes.\n" + WEBSOCKET_ADDITIONS,
        # /docs and /redoc are served by sbx_api.webui from local assets (FastAPI's use a CDN).
        docs_url=None,
        redoc_url=None,
        # FastAPI's own request spans and metrics only when tracing is on: unconfigured, it still
        # asks OpenTelemetry for its providers (environment lookups) on every request, about 5 %
        # of an authenticated read's CPU.
        telemetry=None if tracing_requested() else {"tracing": False, "metrics": False, "logs": False},
    )
    exception_handlers.install(app)
    # Operations routes are never rate limited; every other route is (RateLimitMiddleware).
    for router in (
        health_router,
        info_router,
        auth_router,
        api_keys_router,
        environments_router,
        sandboxes_router,
        processes_router,
        files_router,
        files_watch_router,
        ports_router,
        snapshots_router,
        volumes_router,
        streams_router,
        audit_router,
        webhooks_router,
    ):
        app.include_router(router)
    install_webui(app, settings)

    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        upload_max_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(RateLimitMiddleware)  # inside CORS: preflights are not counted
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()],
            allow_methods=["*"],
            allow_headers=["*"],
        )
    # Requests to a preview host go to the proxy before anything else sees them (inside
    # TraceMiddleware, so they carry a trace id and are logged and counted).
    app.add_middleware(PreviewHostMiddleware, template=settings.preview_url)
    app.add_middleware(TraceMiddleware)
    openapi.install(app)
    return app
