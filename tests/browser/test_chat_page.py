"""The chat page at /chatbot/{id} in a real Chromium: it streams, stops, remembers and stays text-only."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from playwright.sync_api import Page, expect

from streamwise.api import chat_page
from tests.browser.conftest import PageLog, assert_clean
from tests.support.flows import (
    agent_flow,
    fake_model,
    fake_tool,
    llm_chain_flow,
    openai_model,
    rag_flow,
    stub_calls,
)
from tests.support.openai_stub import StubServer, expected_text, serve_in_thread
from tests.support.server import LiveServer

CHATBOT_CONFIG: dict[str, object] = {
    "title": "Stub helpdesk",
    "welcomeMessage": "Hello! Ask me anything.",
    "starterPrompts": {"0": {"prompt": "What can you do?"}, "1": {"prompt": "Tell me more"}},
    "botMessage": {"backgroundColor": "#f0f4ff", "textColor": "#111111"},
    "textInput": {"placeholder": "Ask the stub"},
}


def ensure_chat_page(app: FastAPI) -> None:
    if not any(
        isinstance(route, APIRoute) and route.path == "/chatbot/{chatflow_id}" for route in app.routes
    ):
        app.include_router(chat_page.router)


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with serve_in_thread() as running:
        yield running


@pytest.fixture(scope="module")
def live(server: LiveServer) -> LiveServer:
    ensure_chat_page(server.app)
    return server


def create(live: LiveServer, flow_data: str, chatbot_config: dict[str, object] | None = None) -> str:
    record: dict[str, object] = {"name": "browser flow", "flowData": flow_data}
    if chatbot_config is not None:
        record["chatbotConfig"] = json.dumps(chatbot_config)
    response = httpx.post(f"{live.base_url}/api/v1/chatflows", json=record, timeout=10)
    assert response.status_code == 200, response.text
    chatflow_id: str = response.json()["id"]
    return chatflow_id


def history(live: LiveServer, chatflow_id: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = httpx.get(
        f"{live.base_url}/api/v1/chatmessage/{chatflow_id}", timeout=10
    ).json()
    return rows


def answer_text(page: Page) -> str:
    return page.locator(".sw-bot:not(.sw-welcome) .sw-text").last.text_content() or ""


def growth(page: Page, until_status: str, within: float = 15.0) -> list[int]:
    """Lengths of the last answer, sampled until its status is `until_status`."""
    lengths: list[int] = []
    deadline = time.monotonic() + within
    last = page.locator(".sw-bot:not(.sw-welcome)").last
    while last.get_attribute("data-status") != until_status:
        assert time.monotonic() < deadline, f"answer never became {until_status}"
        lengths.append(len(answer_text(page)))
        page.wait_for_timeout(100)
    return lengths


def test_streams_stops_and_reloads_history(
    live: LiveServer, stub: StubServer, page: Page, page_log: PageLog, artifacts: Path
) -> None:
    chatflow_id = create(
        live,
        llm_chain_flow(openai_model(stub.base_url, modelName="stub?tokens=40&delay=0.03")),
        CHATBOT_CONFIG,
    )
    page.goto(f"{live.base_url}/chatbot/{chatflow_id}")
    expect(page.locator("#sw-title")).to_have_text("Stub helpdesk")
    expect(page.locator(".sw-welcome")).to_have_text("Hello! Ask me anything.")
    expect(page.locator(".sw-starter")).to_have_text(["What can you do?", "Tell me more"])
    expect(page.locator("#sw-question")).to_have_attribute("placeholder", "Ask the stub")

    page.locator(".sw-starter").first.click()
    expect(page.locator(".sw-user")).to_have_text(["What can you do?"])
    lengths = growth(page, "complete")
    grew = [length for length in dict.fromkeys(lengths) if 0 < length < len(expected_text(40))]
    assert len(grew) >= 3, lengths  # seen part-way, several times, each longer
    assert grew == sorted(grew)
    assert answer_text(page) == expected_text(40)
    expect(page.locator(".sw-starter")).to_have_count(0)

    # A long answer, stopped mid-way from the Stop button.
    slow = create(live, llm_chain_flow(openai_model(stub.base_url, modelName="stub?tokens=400&delay=0.03")))
    page.goto(f"{live.base_url}/chatbot/{slow}")
    page.locator("#sw-question").fill("Go on and on")
    page.locator("#sw-question").press("Enter")
    expect(page.locator(".sw-bot .sw-text").last).to_contain_text("t5 ")
    expect(page.locator("#sw-stop")).to_be_visible()
    page.locator("#sw-stop").click()
    expect(page.locator(".sw-bot").last).to_have_attribute("data-status", "aborted")
    expect(page.locator(".sw-bot .sw-status").last).to_have_text("Stopped")
    stopped_at = answer_text(page)
    page.wait_for_timeout(400)
    assert answer_text(page) == stopped_at and len(stopped_at) < len(expected_text(400))
    expect(page.locator("#sw-stop")).to_be_hidden()
    rows = history(live, slow)
    assert [row["role"] for row in rows] == ["userMessage", "apiMessage"]
    assert rows[1]["status"] == "aborted"
    assert str(rows[1]["content"]).startswith(stopped_at.strip()[:10])

    # The tab keeps its chat id: a reload shows the exchange from the server.
    page.reload()
    expect(page.locator("#sw-app")).to_have_attribute("data-ready", "true")
    expect(page.locator(".sw-user")).to_have_text(["Go on and on"])
    expect(page.locator(".sw-bot .sw-status").last).to_have_text("Stopped")
    assert answer_text(page).startswith("t0 t1 ")
    page.screenshot(path=str(artifacts / "chat_page_stopped.png"), full_page=True)
    assert_clean(page_log)


def test_shows_sources_and_model_text_as_text(
    live: LiveServer, page: Page, page_log: PageLog, artifacts: Path
) -> None:
    hostile = ["Look: ", '<img src=x onerror="window.__pwned=1">', " <b>bold</b> done"]
    chatflow_id = create(
        live,
        rag_flow(
            fake_model(tokens=json.dumps(hostile), delayMs=20),
            texts=["Streamwise streams tokens.", "Paris is in France."],
            chain="retrievalQAChain",
            top_k=1,
        ),
    )
    upsert = httpx.post(f"{live.base_url}/api/v1/vector/upsert/{chatflow_id}", json={}, timeout=30)
    assert upsert.status_code == 200, upsert.text
    page.goto(f"{live.base_url}/chatbot/{chatflow_id}")
    expect(page.locator("#sw-app")).to_have_attribute("data-ready", "true")
    page.locator("#sw-question").fill("Where is Paris?")
    page.locator("#sw-send").click()
    expect(page.locator(".sw-bot").last).to_have_attribute("data-status", "complete")
    assert answer_text(page) == "".join(hostile)
    assert page.locator("#sw-log img, #sw-log b").count() == 0
    assert page.evaluate("window.__pwned") is None
    sources = page.locator(".sw-bot .sw-sources").last
    expect(sources.locator("summary")).to_have_text("Sources (1)")
    sources.locator("summary").click()
    expect(sources.locator(".sw-source-text")).to_have_text(["Paris is in France."])
    expect(sources.locator(".sw-source-name")).to_have_text(["text-1"])
    page.screenshot(path=str(artifacts / "chat_page_sources.png"), full_page=True)
    assert_clean(page_log)


def test_an_agent_shows_calling_then_used_tools(
    live: LiveServer, stub: StubServer, page: Page, page_log: PageLog
) -> None:
    model = stub_calls([("lookup", '{"input": "2+2"}')], tokens=4, delay=0.02, case="page")
    tool = fake_tool("tool_0", "lookup", output="four", delayMs=1500)
    chatflow_id = create(live, agent_flow(openai_model(stub.base_url, modelName=model), [tool]))
    page.goto(f"{live.base_url}/chatbot/{chatflow_id}")
    expect(page.locator("#sw-app")).to_have_attribute("data-ready", "true")
    page.locator("#sw-question").fill("What is 2+2?")
    page.locator("#sw-send").click()
    expect(page.locator(".sw-bot .sw-status").last).to_have_text("calling lookup…")
    expect(page.locator(".sw-bot").last).to_have_attribute("data-status", "complete")
    tools = page.locator(".sw-bot .sw-tools").last
    expect(tools.locator("summary")).to_have_text("Used tools (1)")
    tools.locator("summary").click()
    expect(tools.locator(".sw-tool-name")).to_have_text(["lookup"])
    expect(tools.locator("pre").last).to_have_text("output: four")
    assert_clean(page_log)
