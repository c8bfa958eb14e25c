"""GET /api/v1/health: whether this server can serve, for load balancers and operators.

It checks what a prediction needs beyond this process: the database (one `SELECT 1`), when rate
limits live in Redis that store, and in scale-out mode the Redis that relays runs (a PING); each
check has a deadline, so a dead peer makes the answer a 503,
never a hang. It names no address, and needs no key (it tells nothing a ping does not, beyond
whether the server is well). `/api/v1/ping` stays the bare liveness check Flowise has.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from streamwise.api.access import Access, guard
from streamwise.api.state import AppState, State
from streamwise.scaleout import redis_healthy

router = APIRouter()

CHECK_SECONDS = 2.0


async def _database(state: AppState) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            async with state.database.session() as session:
                await session.execute(text("SELECT 1"))
    except Exception:
        return {"ok": False}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 2)}


async def _nothing() -> None:
    return None


@router.get("/api/v1/health", response_model=None, dependencies=[guard(Access.OPEN)])
async def health(state: State) -> JSONResponse:
    remote = state.remote
    database, limiter, redis = await asyncio.gather(
        _database(state),
        state.rate_limiter.healthy(),
        redis_healthy(remote.redis) if remote is not None else _nothing(),
    )
    report: dict[str, Any] = {
        "database": database,
        "rateLimitStore": {"kind": state.rate_limiter.kind, "ok": limiter},
        "runs": len(state.runs),
        "draining": state.runs.draining,
    }
    if remote is not None:
        report["redis"] = {"ok": redis, "role": state.settings.role, "streams": remote.hub.subscriptions}
    well = database["ok"] and limiter and redis is not False and not state.runs.draining
    report = {"status": "ok" if well else "degraded", **report}
    return JSONResponse(report, status_code=200 if well else 503)
