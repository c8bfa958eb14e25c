"""GET /api/v1/ping: liveness, answered as Flowise does."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from streamwise.api.access import Access, guard

router = APIRouter()


@router.get("/api/v1/ping", response_class=PlainTextResponse, dependencies=[guard(Access.OPEN)])
async def ping() -> str:
    return "pong"
