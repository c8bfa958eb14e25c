"""The flowise-embed web widget (npm, 3.1.6) on a page of another origin, talking to a live server
(and, for the streaming test, to an API node whose answers a worker runs).

The page is served from its own port, so every call the widget makes is cross-origin: CORS and the
preflights are exercised for real. The model is the OpenAI stub, slowed down so the answer visibly
grows in the bot's bubble.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from streamwise.nodes.services import NodeServices
from streamwise.settings import Settings
from tests.browser.conftest import PageLog, assert_clean
from tests.support.cluster import cluster
from tests.support.flows import chain_flow, openai_model
from tests.support.openai_stub import StubServer, expected_text, serve_in_thread
from tests.support.pg import PostgresUnavailable, postgres_test_database_sync
from tests.support.redis import REDIS_URL
from tests.support.server import LiveServer, create_flow, free_port, live_server

ROOT = Path(__file__).resolve().parents[2]
WIDGET = ROOT / "node_modules" / "flowise-embed" / "dist" / "web.js"
TOKENS = 40
MODEL = f"stub?tokens={TOKENS}&delay=0.03"
BOT = "[data-testid='host-bubble']"


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with serve_in_thread() as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("embed"),
        seed=False,
        preload_local_model=False,
        shutdown_grace_seconds=5,
    )
    with live_server(settings, NodeServices(env={})) as running:
        yield running


@dataclass(frozen=True)
class ApiNode:
    """An API node of a scale-out deployment, as `_create` and `_open` use a server."""

    base_url: str

    def create_flow(self, flow_data: str, name: str = "live flow") -> str:
        return create_flow(self.base_url, flow_data, name)


@pytest.fixture(scope="module")
def api_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiNode]:
    """`streamwise start --role api` and a `streamwise worker` on PostgreSQL and the shared Redis."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_test_database_sync())
        except PostgresUnavailable as exc:
            pytest.skip(str(exc))
        deployment = stack.enter_context(
            cluster(tmp_path_factory.mktemp("embed-cluster"), url, REDIS_URL, workers=1)
        )
        yield ApiNode(deployment.api_urls[0])


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """A static server of its own (another origin) for the page and the widget's script."""
    if not WIDGET.exists():
        pytest.fail("flowise-embed is not installed: run `npm ci` in the repository")
    page_dir = ROOT / "node_modules" / "flowise-embed" / "dist"
    handler = functools.partial(_QuietHandler, directory=str(page_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="embed-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/page.html"):
            query = self.path.partition("?")[2]
            params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
            body = _page(
                params["chatflowid"], params["apiHost"].replace("%3A", ":").replace("%2F", "/")
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


def _page(chatflow_id: str, api_host: str) -> str:
    config = json.dumps({"chatflowid": chatflow_id, "apiHost": api_host})
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>embed</title><link rel="icon" href="data:,"></head>
<body><flowise-fullchatbot></flowise-fullchatbot>
<script type="module">
  import Chatbot from "/web.js";
  Chatbot.initFull({config});
</script></body></html>"""


def _create(
    server: LiveServer | ApiNode, stub: StubServer, chatbot_config: dict[str, object] | None = None
) -> str:
    flow = chain_flow(openai_model(stub.base_url, modelName=MODEL), memory="bufferMemory")
    chatflow_id = server.create_flow(flow, name="embed")
    if chatbot_config is not None:
        url = f"{server.base_url}/api/v1/chatflows/{chatflow_id}"
        changed = httpx.put(url, json={"chatbotConfig": json.dumps(chatbot_config)}, timeout=10)
        assert changed.status_code == 200, changed.text
    return chatflow_id


def _open(page: Page, site: str, server: LiveServer | ApiNode, chatflow_id: str) -> None:
    page.goto(f"{site}/page.html?chatflowid={chatflow_id}&apiHost={server.base_url}")
    page.locator("flowise-fullchatbot textarea").wait_for()


def _ask(page: Page, question: str) -> None:
    box = page.locator("flowise-fullchatbot textarea")
    box.fill(question)
    box.press("Enter")


def _bubble_texts(page: Page) -> list[str]:
    return [text.strip() for text in page.locator(f"flowise-fullchatbot {BOT}").all_inner_texts()]


def _wait_for_answer(page: Page, count: int, answer: str, within: float = 15) -> list[str]:
    """Samples of the newest bot bubble until it holds `answer`; returns the samples seen."""
    samples: list[str] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        texts = _bubble_texts(page)
        if len(texts) >= count:
            samples.append(texts[count - 1])
            if samples[-1] == answer:
                return samples
        page.wait_for_timeout(100)
    raise AssertionError(f"no answer {answer!r} within {within} s; saw {samples[-3:]}")


@pytest.mark.parametrize("where", ["server", "api_node"])
def test_the_widget_streams_and_remembers(
    page: Page,
    page_log: PageLog,
    artifacts: Path,
    site: str,
    stub: StubServer,
    where: str,
    request: pytest.FixtureRequest,
) -> None:
    server: LiveServer | ApiNode = request.getfixturevalue(where)
    chatflow_id = _create(server, stub)
    _open(page, site, server, chatflow_id)
    welcome = len(_bubble_texts(page))  # the widget's own welcome message
    answer = expected_text(TOKENS).strip()

    _ask(page, "What is streaming?")
    samples = _wait_for_answer(page, welcome + 1, answer)
    growing = [text for text in dict.fromkeys(samples) if text and text != answer]
    assert len(growing) >= 3, samples  # seen part-way several times: it streamed
    assert all(answer.startswith(text) for text in growing), growing

    _ask(page, "And then?")
    _wait_for_answer(page, welcome + 2, answer)
    second = stub.records()[-1].body["messages"]
    contents = [str(message.get("content")) for message in second]
    assert contents[-1] == "And then?", contents
    assert "What is streaming?" in contents, contents  # the first exchange, from memory
    assert any(text.strip() == answer for text in contents), contents
    page.screenshot(path=str(artifacts / f"embed_widget_{where}.png"))
    assert_clean(page_log)


def test_a_page_on_a_disallowed_origin_gets_403(
    page: Page, site: str, server: LiveServer, stub: StubServer
) -> None:
    chatflow_id = _create(server, stub, {"allowedOrigins": ["https://only.example"]})
    statuses: list[tuple[str, int]] = []
    page.on("response", lambda response: statuses.append((response.url, response.status)))
    _open(page, site, server, chatflow_id)
    _ask(page, "Hello?")
    deadline = time.monotonic() + 10
    prediction = f"{server.base_url}/api/v1/prediction/{chatflow_id}"
    while time.monotonic() < deadline and not any(url == prediction for url, _ in statuses):
        page.wait_for_timeout(100)
    assert (prediction, 403) in statuses, statuses
    fetched = page.evaluate(
        "async (url) => { const r = await fetch(url, {method: 'POST',"
        " headers: {'Content-Type': 'application/json'}, body: JSON.stringify({question: 'Hi'})});"
        " return [r.status, await r.json()]; }",
        prediction,
    )
    assert fetched[0] == 403
    assert fetched[1]["message"] == "This site is not allowed to access this chatbot"
