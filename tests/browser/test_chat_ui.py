"""`streamwise chat-ui` in a real Chromium: pick a chatflow, watch the answer grow, Stop it, reload."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.flows import llm_chain_flow, openai_model
from tests.support.openai_stub import StubServer, serve_in_thread
from tests.support.process import stop_child, wait_until_answering
from tests.support.server import LiveServer, free_port


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with serve_in_thread() as running:
        yield running


@pytest.fixture(scope="module")
def chat_ui(server: LiveServer) -> Iterator[str]:
    """`streamwise chat-ui` on a free port, answering within 60 s; stopped by its pid."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamwise", "chat-ui", "--server", server.base_url, "--port", str(port)],
        env={**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(
            process,
            lambda: httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok",
            within=60,
            what="the chat app",
            output=lambda: process.stdout.read() if process.stdout else "",
        )
        yield url
    finally:
        stop_child(process)
        assert process.returncode == 0, process.stdout.read() if process.stdout else ""


def create(server: LiveServer, name: str, model: str, stub: StubServer) -> str:
    return server.create_flow(llm_chain_flow(openai_model(stub.base_url, modelName=model)), name=name)


def last_answer(page: Page) -> str:
    answer = page.locator('[data-testid="stChatMessage"]').last.locator('[data-testid="stMarkdownContainer"]')
    return answer.first.text_content() or ""


def test_pick_stream_stop_and_reload(
    server: LiveServer, stub: StubServer, chat_ui: str, page: Page, artifacts: Path
) -> None:
    create(server, "Quick flow", "stub?tokens=3", stub)
    create(server, "Broken flow", "stub?status=500&message=upstream+exploded", stub)
    slow = create(server, "Slow flow", "stub?tokens=400&delay=0.03", stub)
    page.set_default_timeout(20_000)
    page.goto(chat_ui)
    picker = page.get_by_role("combobox", name="Chatflow")
    expect(picker).to_have_value(re.compile(r"^Quick flow"))
    picker.click()
    page.get_by_role("option", name=re.compile(r"^Slow flow")).click()
    expect(picker).to_have_value(re.compile(r"^Slow flow"))
    expect(page.get_by_role("heading", name="Slow flow")).to_be_visible()

    page.locator('[data-testid="stChatInputTextArea"]').fill("Tell me everything")
    page.locator('[data-testid="stChatInputTextArea"]').press("Enter")
    expect(page.locator('[data-testid="stChatMessage"]').first).to_contain_text("Tell me everything")
    expect(page.locator('[data-testid="stChatMessage"]').last).to_contain_text("t2 ")
    lengths: list[int] = []
    for _ in range(12):
        lengths.append(len(last_answer(page)))
        page.wait_for_timeout(150)
    grew = list(dict.fromkeys(lengths))
    assert len(grew) >= 3 and grew == sorted(grew), lengths

    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)
    expect(page.locator('[data-testid="stChatMessage"]').last).to_contain_text("Stopped")
    stopped = last_answer(page)
    page.wait_for_timeout(600)
    assert last_answer(page) == stopped

    chat_id = page.evaluate("new URLSearchParams(location.search).get('chat')")
    assert chat_id
    rows = httpx.get(
        f"{server.base_url}/api/v1/chatmessage/{slow}", params={"chatId": chat_id}, timeout=10
    ).json()
    assert [row["role"] for row in rows] == ["userMessage", "apiMessage"]
    assert rows[1]["status"] == "aborted"
    assert 0 < len(rows[1]["content"]) < len("".join(f"t{i} " for i in range(400)))

    # A refresh is a new Streamlit session: the chat id and the chatflow come back from the URL and
    # the exchange from the server.
    page.reload()
    expect(page.get_by_role("heading", name="Slow flow")).to_be_visible()
    messages = page.locator('[data-testid="stChatMessage"]')
    expect(messages).to_have_count(2)
    expect(messages.first).to_contain_text("Tell me everything")
    expect(messages.last).to_contain_text("Stopped")
    expect(messages.last).to_contain_text("t0 t1 t2 ")
    page.screenshot(path=str(artifacts / "chat_ui_stopped.png"), full_page=True)

    # A failing model: the error is shown, and nothing is left running.
    picker.click()
    page.get_by_role("option", name=re.compile(r"^Broken flow")).click()
    expect(page.get_by_role("heading", name="Broken flow")).to_be_visible()
    page.locator('[data-testid="stChatInputTextArea"]').fill("Anything?")
    page.locator('[data-testid="stChatInputTextArea"]').press("Enter")
    alert = page.locator('[data-testid="stAlertContentError"]').last
    expect(alert).to_be_visible()
    page.wait_for_timeout(500)  # past the run that moves the answer into the history
    expect(alert).to_be_visible()
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)
    page.screenshot(path=str(artifacts / "chat_ui_error.png"), full_page=True)
