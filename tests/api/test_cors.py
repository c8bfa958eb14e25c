"""CORS: the server-wide policy (STREAMWISE_CORS_ORIGINS) and each chatflow's allowedOrigins."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from streamwise.api.cors import DEFAULT_REFUSAL, origin_allowed, url_host
from streamwise.app import create_app
from streamwise.nodes.services import NodeServices
from streamwise.settings import Settings
from tests.api.helpers import create_flow
from tests.support.flows import fake_flow

SITE = "https://shop.example"
OTHER = "https://evil.example"


async def _restricted(client: httpx.AsyncClient, **config: object) -> str:
    chatflow_id = await create_flow(client, fake_flow(tokens=["Hi", " there"]))
    body = {"chatbotConfig": json.dumps({"allowedOrigins": [SITE], **config})}
    changed = await client.put(f"/api/v1/chatflows/{chatflow_id}", json=body)
    assert changed.status_code == 200, changed.text
    return chatflow_id


def test_hosts_are_compared_as_javascript_does() -> None:
    assert url_host("https://Shop.Example:443/path") == "shop.example"
    assert url_host("http://127.0.0.1:8080") == "127.0.0.1:8080"
    assert url_host("null") is None
    assert origin_allowed({}, "https://any.example")
    assert origin_allowed({"allowedOrigins": [""]}, "https://any.example")
    assert origin_allowed({"allowedOrigins": [SITE]}, "https://shop.example")
    assert not origin_allowed({"allowedOrigins": [SITE]}, "http://shop.example:8000")
    assert not origin_allowed({"allowedOrigins": [SITE]}, "null")
    assert origin_allowed({"allowedOrigins": [SITE]}, None)


async def test_preflight_is_answered_for_every_widget_route(client: httpx.AsyncClient) -> None:
    headers = {"Origin": SITE, "Access-Control-Request-Method": "POST"}
    for path in (
        "/api/v1/prediction/x",
        "/api/v1/chatflows-streaming/x",
        "/api/v1/public-chatbotConfig/x",
        "/api/v1/feedback/x",
        "/api/v1/chatmessage/abort/x/y",
    ):
        response = await client.options(
            path, headers={**headers, "Access-Control-Request-Headers": "content-type"}
        )
        assert response.status_code == 200, (path, response.text)
        assert response.headers["access-control-allow-origin"] == "*"
        assert "POST" in response.headers["access-control-allow-methods"]


async def test_simple_requests_carry_the_header(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["Hi"]))
    response = await client.get(f"/api/v1/chatflows-streaming/{chatflow_id}", headers={"Origin": OTHER})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"


async def test_a_disallowed_origin_gets_flowise_403(client: httpx.AsyncClient) -> None:
    chatflow_id = await _restricted(client)
    bad = {"Origin": OTHER}
    response = await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "Hi"}, headers=bad)
    assert response.status_code == 403
    assert response.json() == {"statusCode": 403, "success": False, "message": DEFAULT_REFUSAL, "stack": {}}
    for path in (f"/api/v1/chatflows-streaming/{chatflow_id}", f"/api/v1/public-chatbotConfig/{chatflow_id}"):
        refused = await client.get(path, headers=bad)
        assert refused.status_code == 403, path
    abort = await client.put(f"/api/v1/chatmessage/abort/{chatflow_id}/c1", headers=bad)
    assert abort.status_code == 403
    assert (await client.get(f"/api/v1/feedback/{chatflow_id}", headers=bad)).status_code == 403
    # nothing was stored
    assert (await client.get(f"/api/v1/chatmessage/{chatflow_id}")).json() == []


async def test_a_streaming_request_gets_plain_text(client: httpx.AsyncClient) -> None:
    chatflow_id = await _restricted(client, allowedOriginsError="Not from there")
    body = {"question": "Hi", "streaming": True}
    response = await client.post(f"/api/v1/prediction/{chatflow_id}", json=body, headers={"Origin": OTHER})
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Not from there"
    assert response.headers["access-control-allow-origin"] == "*"  # so the widget can read it


async def test_allowed_and_originless_requests_go_through(client: httpx.AsyncClient) -> None:
    chatflow_id = await _restricted(client)
    for headers in ({"Origin": SITE}, {}):
        response = await client.post(
            f"/api/v1/prediction/{chatflow_id}", json={"question": "Hi"}, headers=headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["text"] == "Hi there"


@pytest.fixture
async def narrow_client(settings: Settings, services: NodeServices) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"cors_origins": [SITE]}), services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            yield http


async def test_a_listed_origin_only(narrow_client: httpx.AsyncClient) -> None:
    ok = await narrow_client.get("/api/v1/chatflows-streaming/none", headers={"Origin": SITE})
    assert ok.headers["access-control-allow-origin"] == SITE
    other = await narrow_client.get("/api/v1/chatflows-streaming/none", headers={"Origin": OTHER})
    assert "access-control-allow-origin" not in other.headers
    preflight = {"Origin": OTHER, "Access-Control-Request-Method": "POST"}
    assert (await narrow_client.options("/api/v1/prediction/x", headers=preflight)).status_code == 400


def test_the_setting_is_a_comma_separated_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMWISE_CORS_ORIGINS", "https://A.example/, https://b.example")
    assert Settings(data_dir=tmp_path).cors_origins == ["https://a.example", "https://b.example"]
    monkeypatch.setenv("STREAMWISE_CORS_ORIGINS", "*")
    assert Settings(data_dir=tmp_path).cors_origins == ["*"]
    monkeypatch.delenv("STREAMWISE_CORS_ORIGINS")
    assert Settings(data_dir=tmp_path, _env_file=None).cors_origins == ["*"]


async def test_other_routes_answer_no_other_site(client: httpx.AsyncClient) -> None:
    """Chatflows, history and upsert are not the widget's: a page on another site can neither read
    them nor change them, not even with a `text/plain` POST that needs no preflight."""
    chatflow_id = await create_flow(client, fake_flow(tokens=["Hi"]))
    flow = fake_flow(tokens=["x"])
    sneaky = json.dumps({"name": "planted", "flowData": flow})
    for method, path, body in (
        ("GET", "/api/v1/chatflows", None),
        ("GET", f"/api/v1/chatmessage/{chatflow_id}", None),
        ("POST", "/api/v1/chatflows", sneaky),
        ("DELETE", f"/api/v1/chatflows/{chatflow_id}", None),
        ("POST", f"/api/v1/vector/upsert/{chatflow_id}", "{}"),
    ):
        headers = {"Origin": OTHER, "Content-Type": "text/plain"}
        response = await client.request(method, path, content=body, headers=headers)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["message"] == "This route does not answer requests from other sites"
        assert "access-control-allow-origin" not in response.headers
    preflight = {"Origin": OTHER, "Access-Control-Request-Method": "POST"}
    assert (
        "access-control-allow-origin"
        not in (await client.options("/api/v1/chatflows", headers=preflight)).headers
    )
    names = [f["name"] for f in (await client.get("/api/v1/chatflows")).json()]
    assert "planted" not in names and len(names) == 1  # nothing planted, nothing deleted
    # The server's own pages, and clients that send no Origin, are not affected.
    own = await client.get("/api/v1/chatflows", headers={"Origin": "http://localhost"})
    assert own.status_code == 200
    assert (await client.get("/api/v1/chatflows")).status_code == 200
