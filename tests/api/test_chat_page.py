"""GET /chatbot/{id}: the page, its assets, its headers, and the chatbotConfig rendered into it safely."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from streamwise.api import chat_page
from tests.support.flows import fake_flow


def ensure_chat_page(app: FastAPI) -> None:
    """The router, for as long as the app factory does not include it itself."""
    if not any(
        isinstance(route, APIRoute) and route.path == "/chatbot/{chatflow_id}" for route in app.routes
    ):
        app.include_router(chat_page.router)


@pytest.fixture
async def page_client(app: FastAPI, client: httpx.AsyncClient) -> httpx.AsyncClient:
    ensure_chat_page(app)
    return client


async def create(client: httpx.AsyncClient, chatbot_config: object | None = None) -> str:
    record: dict[str, object] = {"name": "Page flow", "flowData": fake_flow(tokens=["hi"])}
    if chatbot_config is not None:
        record["chatbotConfig"] = json.dumps(chatbot_config)
    response = await client.post("/api/v1/chatflows", json=record)
    assert response.status_code == 200, response.text
    chatflow_id: str = response.json()["id"]
    return chatflow_id


def embedded_config(page: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="sw-config">(.*?)</script>', page, re.S)
    assert found is not None
    parsed: dict[str, object] = json.loads(found.group(1))
    return parsed


async def test_the_page_is_html_with_a_strict_csp(page_client: httpx.AsyncClient) -> None:
    chatflow_id = await create(page_client, {"title": "Helpdesk", "welcomeMessage": "Hello!"})
    response = await page_client.get(f"/chatbot/{chatflow_id}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    page = response.text
    assert "<title>Helpdesk</title>" in page
    config = embedded_config(page)
    assert config["chatflowId"] == chatflow_id
    assert config["chatbotConfig"] == {"title": "Helpdesk", "welcomeMessage": "Hello!"}
    # Nothing from anywhere else: every src/href is this server's or a data: URL.
    for url in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert url.startswith("/chatbot-assets/") or url.startswith("data:"), url


async def test_chatbot_config_cannot_close_the_script_tag(page_client: httpx.AsyncClient) -> None:
    hostile = "</script><script>alert(1)</script><!-- & \u2028"
    chatflow_id = await create(
        page_client,
        {"title": "<b>x</b>", "welcomeMessage": hostile, "starterPrompts": {"0": {"prompt": hostile}}},
    )
    page = (await page_client.get(f"/chatbot/{chatflow_id}")).text
    assert page.count("</script>") == 2  # the config's own closing tag and the script's
    assert "<script>alert" not in page and "<!--" not in page and "<b>" not in page
    assert "<title>&lt;b&gt;x&lt;/b&gt;</title>" in page
    config = embedded_config(page)
    assert config["chatbotConfig"] == {
        "title": "<b>x</b>",
        "welcomeMessage": hostile,
        "starterPrompts": {"0": {"prompt": hostile}},
    }


async def test_no_or_odd_chatbot_config_is_an_empty_one(page_client: httpx.AsyncClient) -> None:
    for stored in (None, [1, 2]):
        chatflow_id = await create(page_client, stored)
        page = (await page_client.get(f"/chatbot/{chatflow_id}")).text
        assert embedded_config(page)["chatbotConfig"] == {}
        assert "<title>Page flow</title>" in page


async def test_an_unknown_chatflow_is_a_404_page_or_json(page_client: httpx.AsyncClient) -> None:
    as_page = await page_client.get("/chatbot/nope", headers={"Accept": "text/html"})
    assert as_page.status_code == 404 and as_page.headers["content-type"].startswith("text/html")
    assert "not found" in as_page.text and "content-security-policy" in as_page.headers
    as_json = await page_client.get("/chatbot/nope", headers={"Accept": "application/json"})
    assert as_json.status_code == 404
    assert as_json.json() == {
        "statusCode": 404,
        "success": False,
        "message": "Chatflow nope not found",
        "stack": {},
    }


async def test_assets_are_served_with_cache_headers(page_client: httpx.AsyncClient) -> None:
    chatflow_id = await create(page_client)
    page = (await page_client.get(f"/chatbot/{chatflow_id}")).text
    links = re.findall(r'(?:src|href)="(/chatbot-assets/[^"]+)"', page)
    assert sorted(link.split("?")[0] for link in links) == [
        "/chatbot-assets/chat.css",
        "/chatbot-assets/chat.js",
    ]
    for link in links:
        response = await page_client.get(link)
        assert response.status_code == 200
        kind = "text/javascript" if ".js" in link else "text/css"
        assert response.headers["content-type"].startswith(kind)
        assert "max-age=" in response.headers["cache-control"]
        etag = response.headers["etag"]
        again = await page_client.get(link, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
    assert (await page_client.get("/chatbot-assets/index.html")).status_code == 404
    assert (await page_client.get("/chatbot-assets/..%2Fapp.py")).status_code == 404


async def test_the_script_never_writes_html() -> None:
    from streamwise.chat_page import STATIC_DIR

    script = (STATIC_DIR / "chat.js").read_text()
    assert "innerHTML" not in script and "outerHTML" not in script and "insertAdjacentHTML" not in script
    assert "eval(" not in script and "document.write" not in script
