"""Every route x {no key, wrong key, right key, another chatflow's key} x {open, keyed}, from the
app's own route table: a route added later is in the matrix without anyone remembering to add it."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from streamwise.api.access import Access, access_of, api_routes
from streamwise.app import create_app
from streamwise.nodes.services import NodeServices
from streamwise.settings import Settings
from tests.conftest import FAKE_MODULES
from tests.support.flows import fake_flow

FEEDBACK_ON = json.dumps({"chatFeedback": {"status": True}})
KEYS = ("none", "wrong", "right", "other")
WRONG_KEY = "sw_000000000000_" + "x" * 43


@dataclass
class World:
    app: FastAPI
    client: httpx.AsyncClient
    keys: dict[str, str]  # "right" (the bound flow's key), "other" (a second key)
    flows: dict[str, str]  # "bound" -> id, "unbound" -> id
    feedback: dict[str, str]  # flow kind -> a feedback id on it
    messages: dict[str, dict[str, str]]  # flow kind -> {chatId, messageId}
    runs: dict[str, str]  # flow kind -> the id of a streamed run, still kept for resuming


async def _world(tmp_path: Path, auth: str) -> AsyncIterator[World]:
    settings = Settings(
        data_dir=tmp_path,
        seed=False,
        preload_local_model=False,
        node_modules=FAKE_MODULES,
        auth=auth,
    )
    app = create_app(settings, NodeServices(env={}))
    async with app.router.lifespan_context(app):
        state = app.state.streamwise
        right = await state.keys.create("right")
        other = await state.keys.create("other")
        flows: dict[str, str] = {}
        for kind, key_id in (("bound", right.record.id), ("unbound", None)):
            record = await state.chatflows.create(
                {"name": kind, "flowData": fake_flow(), "chatbotConfig": FEEDBACK_ON, "apikeyid": key_id}
            )
            flows[kind] = record.id
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as client:
            auth_header = {"Authorization": f"Bearer {right.key}"}
            messages: dict[str, dict[str, str]] = {}
            feedback: dict[str, str] = {}
            runs: dict[str, str] = {}
            for kind, chatflow_id in flows.items():
                answer = await client.post(
                    f"/api/v1/prediction/{chatflow_id}", json={"question": "hi"}, headers=auth_header
                )
                assert answer.status_code == 200, answer.text
                ids = {"chatId": answer.json()["chatId"], "messageId": answer.json()["chatMessageId"]}
                messages[kind] = ids
                added = await client.post(
                    "/api/v1/feedback",
                    json={"chatflowid": chatflow_id, **ids, "rating": "THUMBS_UP"},
                    headers=auth_header,
                )
                assert added.status_code == 200, added.text
                feedback[kind] = added.json()["id"]
                streamed = await client.post(
                    f"/api/v1/prediction/{chatflow_id}",
                    json={"question": "hi", "streaming": True},
                    headers=auth_header,
                )
                runs[kind] = streamed.headers["x-run-id"]
            keys = {"right": right.key, "other": other.key}
            yield World(app, client, keys, flows, feedback, messages, runs)


@pytest.fixture(params=["open", "auto"], ids=["open-mode", "keyed-mode"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    async for built in _world(tmp_path, request.param):
        yield built


def routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    return sorted(
        ((method, route) for route in api_routes(app) for method in route.methods or ()),
        key=lambda item: (item[1].path, item[0]),
    )


def _path(route: APIRoute, world: World, kind: str) -> str:
    guard = access_of(route)
    assert guard is not None

    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        if name == "chatflow_id":
            # Routes whose guard does not read the chatflow (chatflows CRUD) get one that is not there,
            # so a passing DELETE or PUT cannot spoil the next cell.
            return world.flows[kind] if guard.chatflow_param == "chatflow_id" else "no-such-flow"
        values = {
            "chat_id": "chat-1",
            "key_id": "no-such-key",
            "credential_id": "no-such-credential",
            "name": "chat.js",
        }
        if name == "feedback_id":
            return world.feedback[kind]
        if name == "run_id":
            return world.runs[kind]
        assert name in values, f"the matrix has no value for path parameter {name!r} of {route.path}"
        return values[name]

    return re.sub(r"\{([^}]+)\}", value, route.path)


def _body(route: APIRoute, world: World, kind: str) -> dict[str, Any] | None:
    if route.path.startswith("/api/v1/prediction"):
        return {"question": "hi"}
    if route.path.startswith("/api/v1/feedback"):
        return {"chatflowid": world.flows[kind], **world.messages[kind], "rating": "THUMBS_DOWN"}
    return {}


# What each route must require: a route added to the app and not to this table fails the test below.
LEVELS: dict[tuple[str, str], Access] = {
    ("GET", "/api/v1/ping"): Access.OPEN,
    ("GET", "/api/v1/health"): Access.OPEN,
    ("GET", "/api/v1/chatflows-streaming/{chatflow_id}"): Access.OPEN,
    ("GET", "/api/v1/public-chatbotConfig/{chatflow_id}"): Access.OPEN,
    ("GET", "/chatbot-assets/{name}"): Access.OPEN,
    ("POST", "/api/v1/prediction/{chatflow_id}"): Access.FLOW,
    ("POST", "/api/v1/predictions/{chatflow_id}"): Access.FLOW,
    ("PUT", "/api/v1/chatmessage/abort/{chatflow_id}/{chat_id:anytext}"): Access.FLOW,
    ("GET", "/chatbot/{chatflow_id}"): Access.FLOW,
    ("GET", "/api/v1/runs/{run_id}/events"): Access.FLOW,
    ("POST", "/api/v1/feedback"): Access.FLOW,
    ("POST", "/api/v1/feedback/{chatflow_id}"): Access.FLOW,
    ("PUT", "/api/v1/feedback/{feedback_id}"): Access.FLOW,
    ("GET", "/api/v1/feedback/{chatflow_id}"): Access.MANAGE_FLOW,
    ("GET", "/api/v1/chatmessage/{chatflow_id}"): Access.MANAGE_FLOW,
    ("DELETE", "/api/v1/chatmessage/{chatflow_id}"): Access.MANAGE_FLOW,
    ("POST", "/api/v1/vector/upsert/{chatflow_id}"): Access.MANAGE_FLOW,
    **{
        (method, path): Access.MANAGE
        for path, methods in (
            ("/api/v1/chatflows", ("GET", "POST")),
            ("/api/v1/chatflows/{chatflow_id}", ("GET", "PUT", "DELETE")),
            ("/api/v1/apikey", ("GET", "POST")),
            ("/api/v1/apikey/{key_id}", ("PUT", "DELETE")),
            ("/api/v1/credentials", ("GET", "POST")),
            ("/api/v1/credentials/{credential_id}", ("GET", "PUT", "DELETE")),
        )
        for method in methods
    },
}


def test_every_route_declares_the_level_the_table_gives_it(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, seed=False, preload_local_model=False), NodeServices(env={}))
    declared = {}
    for method, route in routes(app):
        guard = access_of(route)
        assert guard is not None
        declared[(method, route.path)] = guard.level
    assert declared == LEVELS


def refused(level: Access, *, keyed: bool, bound: bool, key: str) -> bool:
    """The rule, written out independently of the implementation."""
    valid = key in ("right", "other")
    needs_flow_key = bound and key != "right"
    if level is Access.OPEN:
        return False
    if level is Access.FLOW:
        return needs_flow_key
    if level is Access.MANAGE:
        return keyed and not valid
    return (keyed and not valid) or needs_flow_key


async def test_every_route_answers_each_key_as_its_access_level_says(world: World) -> None:
    keyed = world.app.state.streamwise.settings.auth == "auto"
    table = routes(world.app)
    assert len(table) >= 20
    problems: list[str] = []
    for (method, route), key, kind in itertools.product(table, KEYS, ("bound", "unbound")):
        guard = access_of(route)
        assert guard is not None, route.path
        headers = {} if key == "none" else {"Authorization": f"Bearer {world.keys.get(key, WRONG_KEY)}"}
        path = _path(route, world, kind)
        body = _body(route, world, kind) if method in ("POST", "PUT") else None
        # A DELETE of history that passes must not take away the messages later cells rate.
        params = {"chatId": "no-such-chat"} if method == "DELETE" else None
        response = await world.client.request(method, path, json=body, headers=headers, params=params)
        # A flow-level guard with no path parameter (feedback) finds its chatflow in the body.
        reads_flow = guard.chatflow_param is not None or guard.level is Access.FLOW
        expected = refused(guard.level, keyed=keyed, bound=kind == "bound" and reads_flow, key=key)
        cell = f"{method} {path} key={key} flow={kind}: {response.status_code}"
        if response.status_code >= 500:
            problems.append(f"{cell} (server error) {response.text[:200]}")
        elif expected != (response.status_code == 401):
            problems.append(f"{cell}, expected {'401' if expected else 'not 401'}: {response.text[:200]}")
        elif response.status_code == 401:
            assert response.json()["message"].startswith("Unauthorized"), cell
            assert "Bearer" in response.headers["www-authenticate"], cell
    assert not problems, "\n".join(problems)


async def test_a_route_without_an_access_level_stops_the_app_from_being_built(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, seed=False, preload_local_model=False)
    app = create_app(settings, NodeServices(env={}))
    from streamwise.api.access import check_routes

    @app.get("/api/v1/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    with pytest.raises(RuntimeError, match="/api/v1/forgotten"):
        check_routes(app)
