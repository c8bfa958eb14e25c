"""API keys over HTTP: created once and shown once, stored as a hash, the modes they switch, and the
chatflows bound to them (401 before any byte, streaming included)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from streamwise.app import create_app
from streamwise.nodes.services import NodeServices
from streamwise.security import keys as key_module
from streamwise.settings import Settings
from tests.api.helpers import create_flow
from tests.conftest import FAKE_MODULES
from tests.support.flows import fake_flow


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path, seed=False, preload_local_model=False, node_modules=FAKE_MODULES, **extra
    )


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as client:
            yield client


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(create_app(_settings(tmp_path), NodeServices(env={}))) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def new_key(
    http: httpx.AsyncClient, name: str, headers: dict[str, str] | None = None
) -> tuple[str, str]:
    created = await http.post("/api/v1/apikey", json={"keyName": name}, headers=headers or {})
    assert created.status_code == 200, created.text
    (entry,) = [item for item in created.json() if item["keyName"] == name]
    return entry["id"], entry["apiKey"]


async def test_a_key_is_shown_once_and_stored_only_as_an_argon2_hash(http: httpx.AsyncClient) -> None:
    key_id, key = await new_key(http, "website")
    assert key.startswith("sw_") and len(key) == 3 + 12 + 1 + 43
    listed = (await http.get("/api/v1/apikey", headers=bearer(key))).json()
    assert [item["id"] for item in listed] == [key_id]
    assert listed[0]["apiKey"] == key[:16] + "…"
    assert key not in json.dumps(listed) and "apiSecret" not in listed[0]
    database = http._transport.app.state.streamwise.database  # type: ignore[attr-defined]
    async with database.session() as session:
        rows = (await session.execute(text("SELECT * FROM apikey"))).all()
    stored = " ".join(str(value) for row in rows for value in row)
    assert key not in stored and key[16:] not in stored
    assert "$argon2id$" in stored


async def test_the_first_key_closes_the_management_routes_and_deleting_the_last_opens_them(
    http: httpx.AsyncClient,
) -> None:
    assert (await http.get("/api/v1/chatflows")).status_code == 200  # loopback, no key: open
    key_id, key = await new_key(http, "admin")
    closed = await http.get("/api/v1/chatflows")
    assert closed.status_code == 401
    assert closed.json()["message"] == "Unauthorized: this route needs a valid API key"
    assert "Bearer" in closed.headers["www-authenticate"]
    wrong = await http.get("/api/v1/chatflows", headers=bearer(key[:-1] + ("A" if key[-1] != "A" else "B")))
    assert wrong.status_code == 401 and "not valid" in wrong.json()["message"]
    assert (await http.get("/api/v1/chatflows", headers=bearer(key))).status_code == 200
    assert (await http.get("/api/v1/apikey")).status_code == 401
    assert (await http.delete(f"/api/v1/apikey/{key_id}", headers=bearer(key))).json() == []
    assert (await http.get("/api/v1/chatflows")).status_code == 200
    assert (await http.get("/api/v1/chatflows", headers=bearer(key))).status_code == 200  # no longer needed


async def test_beyond_loopback_every_management_route_needs_a_key_even_before_one_exists(
    tmp_path: Path,
) -> None:
    app = create_app(_settings(tmp_path, host="0.0.0.0"), NodeServices(env={}))
    async with _client(app) as http:
        assert (await http.get("/api/v1/chatflows")).status_code == 401
        assert (await http.post("/api/v1/apikey", json={"keyName": "x"})).status_code == 401
        assert (await http.get("/api/v1/ping")).status_code == 200


async def test_keys_mode_needs_a_key_on_loopback_and_open_mode_never(tmp_path: Path) -> None:
    async with _client(create_app(_settings(tmp_path / "k", auth="keys"), NodeServices(env={}))) as http:
        assert (await http.get("/api/v1/chatflows")).status_code == 401
    async with _client(
        create_app(_settings(tmp_path / "o", auth="open", host="0.0.0.0"), NodeServices())
    ) as http:
        await new_key(http, "a")
        assert (await http.get("/api/v1/chatflows")).status_code == 200


async def test_a_bound_chatflow_refuses_a_stream_with_401_json_before_any_byte(
    http: httpx.AsyncClient,
) -> None:
    key_id, key = await new_key(http, "bound")
    _, other = await new_key(http, "other", bearer(key))
    chatflow_id = await create_flow(http, fake_flow(tokens=["hi", " there"]), headers=bearer(key))
    bound = await http.put(f"/api/v1/chatflows/{chatflow_id}", json={"apikeyid": key_id}, headers=bearer(key))
    assert bound.status_code == 200 and bound.json()["apikeyid"] == key_id
    for headers in ({}, bearer(other), bearer("sw_000000000000_" + "x" * 43), {"Authorization": "Basic !!"}):
        refused = await http.post(
            f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "streaming": True}, headers=headers
        )
        assert refused.status_code == 401, headers
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["message"].startswith(f"Unauthorized: chatflow {chatflow_id} needs its API key")
    answered = await http.post(
        f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "streaming": True}, headers=bearer(key)
    )
    assert answered.status_code == 200 and answered.headers["content-type"] == "text/event-stream"
    assert 'data:{"event":"end"' in answered.text.replace(" ", "")
    # The streaming check stays open: both SDKs call it without the key.
    assert (await http.get(f"/api/v1/chatflows-streaming/{chatflow_id}")).json() == {"isStreaming": True}
    # Abort needs the key too.
    assert (await http.put(f"/api/v1/chatmessage/abort/{chatflow_id}/c1")).status_code == 401
    assert (
        await http.put(f"/api/v1/chatmessage/abort/{chatflow_id}/c1", headers=bearer(key))
    ).status_code == 200


async def test_binding_to_a_key_that_does_not_exist_is_refused(http: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(http, fake_flow())
    refused = await http.put(f"/api/v1/chatflows/{chatflow_id}", json={"apikeyid": "no-such-key"})
    assert refused.status_code == 400
    assert "API key" in refused.json()["message"]
    unbound = await http.put(f"/api/v1/chatflows/{chatflow_id}", json={"apikeyid": ""})
    assert unbound.status_code == 200 and unbound.json()["apikeyid"] is None


async def test_the_chat_page_of_a_bound_chatflow_asks_the_browser_for_the_key(
    http: httpx.AsyncClient,
) -> None:
    key_id, key = await new_key(http, "page")
    chatflow_id = await create_flow(http, fake_flow(), headers=bearer(key))
    await http.put(f"/api/v1/chatflows/{chatflow_id}", json={"apikeyid": key_id}, headers=bearer(key))
    refused = await http.get(f"/chatbot/{chatflow_id}", headers={"Accept": "text/html"})
    assert refused.status_code == 401
    assert 'Basic realm="Streamwise"' in refused.headers["www-authenticate"]
    basic = base64.b64encode(f"me:{key}".encode()).decode()
    page = await http.get(f"/chatbot/{chatflow_id}", headers={"Authorization": f"Basic {basic}"})
    assert page.status_code == 200 and "<html" in page.text
    # The page's own calls carry the same credentials, and the prediction takes them.
    answer = await http.post(
        f"/api/v1/prediction/{chatflow_id}",
        json={"question": "q"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert answer.status_code == 200


async def test_a_key_is_hashed_once_then_checked_by_digest(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = await new_key(http, "cached")
    calls: list[str] = []
    real = key_module.key_matches

    def counting(key_hash: str, candidate: str) -> bool:
        calls.append(candidate)
        return real(key_hash, candidate)

    monkeypatch.setattr(key_module, "key_matches", counting)
    for _ in range(20):
        assert (await http.get("/api/v1/chatflows", headers=bearer(key))).status_code == 200
    wrong = key[:-2] + ("zz" if not key.endswith("zz") else "yy")
    for _ in range(5):
        assert (await http.get("/api/v1/chatflows", headers=bearer(wrong))).status_code == 401
    assert calls == [key, wrong]


async def test_key_names_are_checked(http: httpx.AsyncClient) -> None:
    for body in ({}, {"keyName": ""}, {"keyName": 3}, {"keyName": "x" * 201}):
        answer = await http.post("/api/v1/apikey", json=body)
        assert answer.status_code == 400, body
    assert (await http.put("/api/v1/apikey/nope", json={"keyName": "n"})).status_code == 404
    assert (await http.delete("/api/v1/apikey/nope")).status_code == 404


async def test_guessing_at_one_keys_secret_is_throttled_and_its_holder_is_not_locked_out(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = await new_key(http, "guessed")
    assert (await http.get("/api/v1/chatflows", headers=bearer(key))).status_code == 200
    checks: list[str] = []
    real = key_module.key_matches

    def counting(key_hash: str, candidate: str) -> bool:
        checks.append(candidate)
        return real(key_hash, candidate)

    monkeypatch.setattr(key_module, "key_matches", counting)
    for attempt in range(20):
        guess = key[:16] + f"{attempt:043d}"
        assert (await http.get("/api/v1/chatflows", headers=bearer(guess))).status_code == 401
    assert len(checks) == 5  # then refused without the slow hash
    assert (await http.get("/api/v1/chatflows", headers=bearer(key))).status_code == 200
