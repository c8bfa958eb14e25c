"""GET /api/v1/health: 200 with what was checked; a 503, within its deadline, when a peer is down."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from streamwise.app import create_app
from streamwise.nodes.services import NodeServices
from streamwise.settings import Settings
from tests.support.server import free_port


async def test_a_well_server_says_what_it_checked(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["database"]["ok"] is True and body["database"]["ms"] >= 0
    assert body["rateLimitStore"] == {"kind": "memory", "ok": True}
    assert body["runs"] == 0 and body["draining"] is False


async def test_an_unreachable_rate_limit_store_is_a_503_within_the_deadline(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        seed=False,
        preload_local_model=False,
        rate_limit_storage=f"redis://127.0.0.1:{free_port()}/0",
    )
    app = create_app(settings, NodeServices(env={}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as client:
            started = time.monotonic()
            answer = await client.get("/api/v1/health")
            assert time.monotonic() - started < 10
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "degraded" and body["rateLimitStore"] == {"kind": "redis", "ok": False}
    assert "127.0.0.1" not in answer.text
