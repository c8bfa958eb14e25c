"""The chat page of a chatflow bound to an API key, in a real Chromium: refused without the key; with
it (given as the password when the browser asks), the page loads and its own requests stream."""

from __future__ import annotations

import asyncio

import httpx
from playwright.sync_api import Browser, expect

from tests.browser.conftest import PageLog, assert_clean
from tests.browser.test_chat_page import ensure_chat_page
from tests.support.flows import fake_flow
from tests.support.server import LiveServer


def test_the_page_needs_the_key_and_then_streams_with_it(server: LiveServer, browser: Browser) -> None:
    ensure_chat_page(server.app)
    created = asyncio.run_coroutine_threadsafe(server.state.keys.create("page"), server.loop).result(30)
    admin = {"Authorization": f"Bearer {created.key}"}
    record = {
        "name": "bound",
        "flowData": fake_flow(tokens=["Hello", " from", " a", " bound", " flow"], delayMs=20),
        "apikeyid": created.record.id,
    }
    made = httpx.post(f"{server.base_url}/api/v1/chatflows", json=record, headers=admin, timeout=10)
    assert made.status_code == 200, made.text
    url = f"{server.base_url}/chatbot/{made.json()['id']}"

    refused = httpx.get(url, headers={"Accept": "text/html"}, timeout=10)
    assert refused.status_code == 401
    assert refused.headers.get_list("www-authenticate") == ['Basic realm="Streamwise"', "Bearer"]

    context = browser.new_context(http_credentials={"username": "me", "password": created.key})
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        log = PageLog()
        page.on("console", lambda m: log.console_errors.append(m.text) if m.type == "error" else None)
        page.on("requestfailed", lambda r: log.failed_requests.append(f"{r.method} {r.url}: {r.failure}"))
        page.goto(url)
        expect(page.locator("#sw-app")).to_have_attribute("data-ready", "true")
        page.locator("#sw-question").fill("Hi?")
        page.locator("#sw-send").click()
        expect(page.locator(".sw-bot").last).to_have_attribute("data-status", "complete")
        expect(page.locator(".sw-bot:not(.sw-welcome) .sw-text").last).to_have_text("Hello from a bound flow")
        assert_clean(log)
    finally:
        context.close()
