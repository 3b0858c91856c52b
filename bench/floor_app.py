"""The floor of a read on this stack: a bare FastAPI app run by uvicorn as the API is, with nothing
of the platform's (no middleware, no auth, no rate limit, no logging, no tracing), served by
`bench.requests` beside the API.

- `GET /live` answers `{"alive": true}`, as the API's `/health/live` does.
- `GET /one-query` makes one PostgreSQL round trip first (a primary-key lookup through an asyncpg
  pool, as every authenticated read must make at least once to see revocations), then answers a
  small JSON body.

Their ratio bounds what any read that checks its caller in the database can reach against
`/health/live` here, whatever the platform's own code costs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI
from fastapi.responses import JSONResponse

_pools: list[asyncpg.Pool] = []


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(os.environ["SBX_DATABASE_URL"], min_size=8, max_size=8)
    _pools.append(pool)
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(lifespan=_lifespan, openapi_url=None)


@app.get("/live")
async def live() -> JSONResponse:
    return JSONResponse({"alive": True})


@app.get("/one-query")
async def one_query() -> JSONResponse:
    async with _pools[0].acquire() as conn:
        row = await conn.fetchrow("SELECT id, email FROM users WHERE id = $1", uuid.uuid4())
    return JSONResponse({"found": row is not None})
