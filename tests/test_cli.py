"""`streamwise start` as a user runs it: first-start seeding, and SIGTERM draining live streams."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.support.flows import fake_flow
from tests.support.process import read_output, started
from tests.support.server import free_port
from tests.support.sse import check_invariant, parse_frames, stream_acting_once

# uvicorn re-raises the signal once it has shut down gracefully, so the exit status reports SIGTERM.
GRACEFUL = (0, -signal.SIGTERM)


def test_first_start_seeds_a_chatflow_and_prints_a_curl_command(tmp_path: Path) -> None:
    port = free_port()
    with started(tmp_path, port) as process:
        flows = httpx.get(f"http://127.0.0.1:{port}/api/v1/chatflows").json()
        assert len(flows) == 1
        streaming = httpx.get(f"http://127.0.0.1:{port}/api/v1/chatflows-streaming/{flows[0]['id']}").json()
        assert streaming == {"isStreaming": True}
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) in GRACEFUL
        output = read_output(process)
    assert flows[0]["id"] in output
    assert f"curl http://localhost:{port}/api/v1/predictions/{flows[0]['id']}" in output
    with started(tmp_path, port) as again:  # a second start finds it and does not seed again
        assert len(httpx.get(f"http://127.0.0.1:{port}/api/v1/chatflows").json()) == 1
        again.send_signal(signal.SIGTERM)
        assert again.wait(20) in GRACEFUL
        assert flows[0]["id"] in read_output(again)


def test_sigterm_sends_error_then_end_stores_the_partial_answer_and_exits(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with started(tmp_path, port) as process:
        created = httpx.post(
            f"{base}/api/v1/chatflows",
            json={"name": "slow", "flowData": fake_flow(tokenCount=5000, delayMs=5)},
        )
        chatflow_id = created.json()["id"]
        received = stream_acting_once(
            f"{base}/api/v1/prediction/{chatflow_id}",
            {"question": "q", "streaming": True, "chatId": "drain"},
            after_tokens=3,
            act=lambda: process.send_signal(signal.SIGTERM),
        )
        assert process.wait(20) in GRACEFUL
    frames = parse_frames(received)
    assert [(f.event, f.data) for f in frames][-2:] == [("error", "server shutting down"), ("end", "[DONE]")]
    partial = check_invariant(frames)
    assert partial
    with started(tmp_path, port) as process:
        messages = httpx.get(f"{base}/api/v1/chatmessage/{chatflow_id}", params={"chatId": "drain"}).json()
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    assert [(m["role"], m["status"]) for m in messages] == [
        ("userMessage", "complete"),
        ("apiMessage", "error"),
    ]
    assert messages[1]["content"] == partial
