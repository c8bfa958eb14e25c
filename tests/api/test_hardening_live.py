"""Hostile peers over real sockets: short and slow bodies, model servers that never answer or fail,
and a client that stops reading. Each gets a prompt, bounded answer; nothing already stored is lost."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from streamwise.engine.eventlog import event_size
from streamwise.nodes.services import NodeServices
from streamwise.settings import Settings
from tests.support.flows import chain_flow, fake_flow, openai_model
from tests.support.openai_stub import StubServer, expected_text, serve_in_thread
from tests.support.server import LiveServer, live_server
from tests.support.sse import check_invariant, parse_frames

BODY_TIMEOUT = 0.5
MODEL_TIMEOUT = 0.5
STREAM_BUFFER = 256 * 1024


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with serve_in_thread() as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("hardened"),
        seed=False,
        preload_local_model=False,
        body_timeout_seconds=BODY_TIMEOUT,
        model_timeout_seconds=MODEL_TIMEOUT,
        stream_buffer_bytes=STREAM_BUFFER,
        checkpoint_seconds=0.1,
        node_modules=["tests.support.fake_model", "tests.support.fake_retrieval"],
    )
    with live_server(settings, NodeServices(env={}, model_timeout_seconds=MODEL_TIMEOUT)) as running:
        yield running


def raw_request(server: LiveServer, head: bytes, body: bytes = b"") -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=10)
    connection.sendall(head + body)
    return connection


def read_until_closed(connection: socket.socket, within: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (failing if it never does)."""
    received = bytearray()
    deadline = time.monotonic() + within
    connection.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            chunk = connection.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return bytes(received)
        received += chunk
    raise AssertionError(f"the server kept the connection open; it sent {bytes(received[:300])!r}")


def post_json(server: LiveServer, chatflow_id: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base_url}/api/v1/prediction/{chatflow_id}", json=body, timeout=30)


def test_a_bad_request_leaves_the_keep_alive_connection_usable(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["ok"]))
    deep = '{"question": "q", "overrideConfig": ' + "[" * 1000 + "]" * 1000 + "}"
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        for _ in range(3):
            bad = client.post(
                f"/api/v1/prediction/{chatflow_id}",
                content=deep,
                headers={"content-type": "application/json"},
            )
            assert bad.status_code == 400 and "nested deeper" in bad.json()["message"]
            assert bad.headers.get("connection") != "close"
            good = client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q"})
            assert good.json()["text"] == "ok"


@pytest.mark.parametrize("path", ["/api/v1/prediction/{id}", "/api/v1/chatflows"])
def test_a_body_shorter_than_its_content_length_gets_408_and_the_connection_is_closed(
    server: LiveServer, path: str
) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["ok"]))
    head = (
        f"POST {path.format(id=chatflow_id)} HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n"
    ).encode()
    started = time.monotonic()
    with raw_request(server, head, b'{"question": "q"') as connection:
        answer = read_until_closed(connection)
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"statusCode":408' in answer and b"did not arrive within 0.5 s" in answer
    assert BODY_TIMEOUT <= elapsed < BODY_TIMEOUT + 5


def test_a_trickling_body_gets_408(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["ok"]))
    body = json.dumps({"question": "q" * 40}).encode()
    head = (
        f"POST /api/v1/prediction/{chatflow_id} HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with raw_request(server, head) as connection:
        try:
            for byte in body:
                connection.sendall(bytes([byte]))
                time.sleep(0.05)  # 1.7 s for the body: over the deadline, under no read timeout
        except OSError:
            pass  # the server gave up on us mid-body: that is the point
        answer = read_until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_model_server_that_never_answers_ends_the_stream_with_an_error_within_the_deadline(
    server: LiveServer, stub: StubServer
) -> None:
    chatflow_id = server.create_flow(chain_flow(openai_model(stub.base_url, modelName="stub?hang=1&case=s")))
    started = time.monotonic()
    response = post_json(server, chatflow_id, {"question": "q", "streaming": True})
    frames = parse_frames(response.content)
    assert [frame.event for frame in frames] == ["error", "end"]
    assert "did not answer within 0.5 s" in frames[0].data and "chatOpenAI_0" in frames[0].data
    assert time.monotonic() - started < MODEL_TIMEOUT + 5


def test_a_model_server_that_never_answers_is_a_504_without_streaming(
    server: LiveServer, stub: StubServer
) -> None:
    chatflow_id = server.create_flow(chain_flow(openai_model(stub.base_url, modelName="stub?hang=1&case=j")))
    started = time.monotonic()
    response = post_json(server, chatflow_id, {"question": "q"})
    assert response.status_code == 504, response.text
    assert "chatOpenAI_0" in response.json()["message"] and stub.base_url not in response.json()["message"]
    assert time.monotonic() - started < MODEL_TIMEOUT + 5


def test_a_model_that_goes_silent_mid_answer_ends_with_an_error_and_the_partial_is_stored(
    server: LiveServer, stub: StubServer
) -> None:
    chatflow_id = server.create_flow(chain_flow(openai_model(stub.base_url, modelName="stub?stall=5&case=x")))
    response = post_json(server, chatflow_id, {"question": "q", "streaming": True, "chatId": "silent"})
    frames = parse_frames(response.content)
    assert [frame.event for frame in frames][-2:] == ["error", "end"]
    assert "went silent for more than 0.5 s" in frames[-2].data
    text = check_invariant(frames)
    assert text == expected_text(5)
    stored = httpx.get(f"{server.base_url}/api/v1/chatmessage/{chatflow_id}", params={"chatId": "silent"})
    assert [(m["content"], m["status"]) for m in stored.json()] == [("q", "complete"), (text, "error")]


@pytest.mark.parametrize(
    ("upstream", "status", "words"),
    [
        (400, 502, "refused the request (HTTP 400)"),
        (401, 502, "refused the credentials (HTTP 401)"),
        (404, 502, "does not know this model"),
        (500, 502, "failed (HTTP 500)"),
        (503, 502, "failed (HTTP 503)"),
        (429, 429, "rate limiting requests (HTTP 429); try again in 17 s"),
    ],
)
def test_upstream_failures_name_the_node_and_never_the_server_or_its_words(
    server: LiveServer, stub: StubServer, upstream: int, status: int, words: str
) -> None:
    secret = "internal-host.corp:8443 said token=abc"
    model = f"stub?status={upstream}&retry=17&message={secret}"
    chatflow_id = server.create_flow(chain_flow(openai_model(stub.base_url, modelName=model)))
    response = post_json(server, chatflow_id, {"question": "q"})
    assert response.status_code == status
    message = response.json()["message"]
    assert message.startswith("Node chatOpenAI_0 (ChatOpenAI): ") and words in message
    if upstream == 429:
        assert response.headers["retry-after"] == "17"
    streamed = parse_frames(post_json(server, chatflow_id, {"question": "q", "streaming": True}).content)
    assert [frame.event for frame in streamed] == ["error", "end"] and streamed[0].data == message
    for text in (message, streamed[0].data):
        assert "internal-host" not in text and "token" not in text and "127.0.0.1" not in text


def test_a_client_that_stops_reading_is_cut_off_while_the_run_finishes_and_is_stored(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = 300_000
    chatflow_id = server.create_flow(fake_flow(tokenCount=tokens))
    body = json.dumps({"question": "q", "streaming": True, "chatId": "deaf"}).encode()
    head = (
        f"POST /api/v1/prediction/{chatflow_id} HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    connection = socket.socket()
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = server.base_url.removeprefix("http://").split(":")
    most_held = 0
    with caplog.at_level(logging.WARNING, logger="streamwise.api"), connection:
        connection.connect((host, int(port)))
        connection.sendall(head + body)  # ... and never read
        deadline = time.monotonic() + 60
        while True:
            stored = httpx.get(
                f"{server.base_url}/api/v1/chatmessage/{chatflow_id}", params={"chatId": "deaf"}
            ).json()
            runs = list(server.state.runs._runs.values())
            held = [sum(map(event_size, run.local_log.events)) for run in runs]
            most_held = max([most_held, *held])
            if stored and stored[-1]["status"] != "running":
                break
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.02)
        answer = read_until_closed(connection, within=30)  # the server closed it
    assert [m["status"] for m in stored] == ["complete", "complete"]
    assert stored[1]["content"] == "".join(f"t{i} " for i in range(tokens))
    assert "stopped reading" in caplog.text
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"event":"end"' not in answer
    # Held events are bounded by the settings: what the client left unread (the stream buffer) and
    # the newest ones kept for a client that resumes (the resume buffer).
    kept = server.state.settings.resume_buffer_bytes
    assert most_held < 2 * STREAM_BUFFER + kept + 64 * 1024


def test_a_running_exchange_is_visible_with_its_answer_so_far(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokenCount=400, delayMs=5))
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            f"{server.base_url}/api/v1/prediction/{chatflow_id}",
            json={"question": "still going?", "streaming": True, "chatId": "live"},
        ) as response,
    ):
        seen: list[tuple[str, str]] = []
        for chunk in response.iter_bytes():
            if b'"event":"token"' in chunk and not seen:
                time.sleep(0.5)  # several checkpoints
                rows = client.get(
                    f"{server.base_url}/api/v1/chatmessage/{chatflow_id}", params={"chatId": "live"}
                )
                seen = [(m["content"], m["status"]) for m in rows.json()]
    assert seen[0] == ("still going?", "running")
    assert seen[1][1] == "running" and seen[1][0].startswith("t0 t1 t2 ")
