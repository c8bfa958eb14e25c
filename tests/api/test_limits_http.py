"""Rate limits and the concurrent-answer limit as clients meet them: 429, `Retry-After`, `limitMsg`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamwise.app import create_app
from streamwise.nodes.services import NodeServices
from streamwise.settings import Settings
from tests.api.helpers import create_flow
from tests.conftest import FAKE_MODULES
from tests.support.flows import fake_flow
from tests.support.redis import REDIS_URL, delete_matching


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path, seed=False, preload_local_model=False, node_modules=FAKE_MODULES, **extra
    )


@asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, NodeServices(env={}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=60) as client:
            yield client


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Poll `condition` every 10 ms; fail after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def rate_limited(limit_max: object, duration: object, message: str = "") -> str:
    """A chatflow's apiConfig as Flowise's UI saves it (numbers as text)."""
    return json.dumps(
        {"rateLimit": {"status": True, "limitMax": limit_max, "limitDuration": duration, "limitMsg": message}}
    )


@pytest.mark.parametrize("storage", ["memory://", REDIS_URL])
async def test_exactly_limit_max_of_100_concurrent_predictions_pass(tmp_path: Path, storage: str) -> None:
    async with _client(_settings(tmp_path, rate_limit_storage=storage)) as http:
        chatflow_id = await create_flow(http, fake_flow(tokens=["ok"]))
        try:
            saved = await http.put(
                f"/api/v1/chatflows/{chatflow_id}", json={"apiConfig": rate_limited("7", "60", "Slow down")}
            )
            assert saved.status_code == 200, saved.text

            async def ask(index: int) -> httpx.Response:
                return await http.post(
                    f"/api/v1/prediction/{chatflow_id}",
                    json={"question": f"q{index}", "streaming": index % 2 == 0},
                )

            answers = await asyncio.wait_for(asyncio.gather(*(ask(index) for index in range(100))), 60)
            statuses = [answer.status_code for answer in answers]
            assert statuses.count(200) == 7, statuses
            assert statuses.count(429) == 93, statuses
            for refused in (answer for answer in answers if answer.status_code == 429):
                assert refused.headers["content-type"] == "application/json"
                assert refused.json()["message"] == "Slow down"
                assert 1 <= int(refused.headers["retry-after"]) <= 60
        finally:
            if storage != "memory://":
                await delete_matching(f"*{chatflow_id}*")


async def test_the_server_default_applies_when_a_chatflow_sets_no_limit(tmp_path: Path) -> None:
    async with _client(_settings(tmp_path, rate_limit_max=2, rate_limit_seconds=60)) as http:
        chatflow_id = await create_flow(http, fake_flow(tokens=["ok"]))
        statuses = [
            (await http.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q"})).status_code
            for _ in range(4)
        ]
        assert statuses == [200, 200, 429, 429]
        refused = await http.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q"})
        assert refused.json()["message"] == "Too many requests, please try again later."
        # Management routes are not rate limited by a chatflow's limit.
        assert (await http.get(f"/api/v1/chatflows/{chatflow_id}")).status_code == 200


async def test_limits_count_per_api_key_when_one_is_sent(tmp_path: Path) -> None:
    async with _client(_settings(tmp_path, auth="open")) as http:
        chatflow_id = await create_flow(http, fake_flow(tokens=["ok"]))
        await http.put(f"/api/v1/chatflows/{chatflow_id}", json={"apiConfig": rate_limited(1, 60)})
        keys = []
        for name in ("a", "b"):
            created = (await http.post("/api/v1/apikey", json={"keyName": name})).json()
            keys.append(next(item["apiKey"] for item in created if item["keyName"] == name))
        for key in keys:  # each key has its own window
            answer = await http.post(
                f"/api/v1/prediction/{chatflow_id}",
                json={"question": "q"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert answer.status_code == 200
        assert (
            await http.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q"})
        ).status_code == 200
        assert (
            await http.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q"})
        ).status_code == 429


async def test_one_client_cannot_hold_more_than_its_share_of_running_answers(tmp_path: Path) -> None:
    async with _client(_settings(tmp_path, max_streams_per_client=2)) as http:
        slow = await create_flow(http, fake_flow(tokens=["a", "b", "c"], delayMs=300))

        async def ask() -> httpx.Response:
            return await http.post(f"/api/v1/prediction/{slow}", json={"question": "q", "streaming": True})

        first = asyncio.create_task(ask())
        second = asyncio.create_task(ask())
        state = http._transport.app.state.streamwise  # type: ignore[attr-defined]
        await until(lambda: state.stream_slots.open_streams("127.0.0.1") == 2)
        third = await ask()
        assert third.status_code == 429
        assert "Too many answers running at once" in third.json()["message"]
        assert third.headers["retry-after"] == "1"
        for task in (first, second):
            assert (await asyncio.wait_for(task, 20)).status_code == 200
        await until(lambda: state.stream_slots.open_streams("127.0.0.1") == 0)
        assert (await ask()).status_code == 200
        assert len(state.stream_slots) == 0  # nothing kept for clients with nothing running
