"""GET /api/v1/ping: liveness, answered as Flowise does."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

router = APIRouter()


@router.get("/api/v1/ping", response_class=PlainTextResponse)
async def ping() -> str:
    return "pong"
