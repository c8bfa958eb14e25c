"""Every route of the app's route table x {no Origin, the server's own, a listed site, another site}
x {STREAMWISE_CORS_ORIGINS=*, a narrow list}: a real preflight, then the request itself."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from streamwise.api.access import api_routes
from streamwise.api.cors import WIDGET_ROUTES
from streamwise.app import create_app
from streamwise.nodes.services import NodeServices
from streamwise.settings import Settings
from tests.conftest import FAKE_MODULES
from tests.support.flows import fake_flow

SITE = "https://shop.example"  # in the chatflow's allowedOrigins and in the narrow server list
ELSEWHERE = "https://evil.example"
OWN = "http://localhost"
ORIGINS = {"none": None, "own": OWN, "listed": SITE, "other": ELSEWHERE}
VALUES = {"chat_id": "c1", "key_id": "k1", "credential_id": "c1", "name": "chat.js"}


@dataclass
class World:
    client: httpx.AsyncClient
    chatflow_id: str
    message: dict[str, str]  # a stored answer of the chatflow: chatflowid, chatId, messageId
    feedback_id: str
    run_id: str  # a streamed run of the chatflow, still kept for resuming
    routes: list[APIRoute]


@asynccontextmanager
async def _server(tmp_path: Path, cors: list[str]) -> AsyncIterator[World]:
    settings = Settings(
        data_dir=tmp_path, seed=False, preload_local_model=False, node_modules=FAKE_MODULES, cors_origins=cors
    )
    app = create_app(settings, NodeServices(env={}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=OWN, timeout=30) as client:
            config = {"allowedOrigins": [SITE], "chatFeedback": {"status": True}}
            record = {
                "name": "narrow",
                "flowData": fake_flow(tokens=["ok"]),
                "chatbotConfig": json.dumps(config),
            }
            made = await client.post("/api/v1/chatflows", json=record)
            assert made.status_code == 200, made.text
            chatflow_id = made.json()["id"]
            answer = (await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q"})).json()
            message = {
                "chatflowid": chatflow_id,
                "chatId": answer["chatId"],
                "messageId": answer["chatMessageId"],
            }
            rated = await client.post("/api/v1/feedback", json={**message, "rating": "THUMBS_UP"})
            assert rated.status_code == 200, rated.text
            streamed = await client.post(
                f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "streaming": True}
            )
            run_id = streamed.headers["x-run-id"]
            yield World(client, chatflow_id, message, rated.json()["id"], run_id, api_routes(app))


def _path(route: APIRoute, world: World) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        if name == "chatflow_id":
            # Not the real one where a passing request would change or delete it.
            return "no-such-flow" if route.path.startswith("/api/v1/chatflows/") else world.chatflow_id
        if name == "run_id":
            return world.run_id
        return world.feedback_id if name == "feedback_id" else VALUES[name]

    return re.sub(r"\{([^}]+)\}", value, route.path)


def _body(path: str, world: World) -> dict[str, str]:
    if "prediction" in path:
        return {"question": "hi"}
    if "/feedback" in path:
        return {**world.message, "rating": "THUMBS_DOWN"}
    return {}


@pytest.mark.parametrize("cors", [["*"], [SITE]], ids=["any-site", "narrow"])
async def test_every_route_with_every_origin(tmp_path: Path, cors: list[str]) -> None:
    problems: list[str] = []
    async with _server(tmp_path, cors) as world:
        cells = itertools.product(world.routes, ("GET", "POST", "PUT", "DELETE"), ORIGINS.items())
        for route, method, (kind, origin) in cells:
            if method not in (route.methods or ()):
                continue
            path = _path(route, world)
            widget = WIDGET_ROUTES.match(path) is not None
            cell = f"{method} {path} origin={kind} cors={cors}"
            headers = {} if origin is None else {"Origin": origin}
            if kind in ("listed", "other"):
                preflight = await world.client.options(
                    path,
                    headers={
                        **headers,
                        "Access-Control-Request-Method": method,
                        "Access-Control-Request-Headers": "authorization, content-type",
                    },
                )
                served = widget and ("*" in cors or origin in cors)
                allowed = preflight.headers.get("access-control-allow-origin")
                if served != (preflight.status_code == 200 and allowed in ("*", origin)):
                    problems.append(f"{cell}: preflight {preflight.status_code} {allowed}")
                allowed_headers = preflight.headers.get("access-control-allow-headers", "").lower()
                if served and "authorization" not in allowed_headers:
                    problems.append(f"{cell}: the preflight does not allow the Authorization header")
            answer = await world.client.request(
                method,
                path,
                headers=headers,
                json=_body(path, world) if method in ("POST", "PUT") else None,
                params={"chatId": "none-such"} if method == "DELETE" else None,
            )
            if answer.status_code >= 500:
                problems.append(f"{cell}: {answer.status_code}")
                continue
            if kind in ("none", "own"):
                refused = False  # curl and the SDKs; the server's own chat page
            elif widget:
                refused = kind == "other"  # the chatflow lists only SITE
            else:
                refused = True  # every other route answers no other site
            if refused != (answer.status_code == 403):
                problems.append(f"{cell}: {answer.status_code} {answer.text[:120]}")
    assert not problems, "\n".join(problems)
