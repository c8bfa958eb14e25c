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


def test_first_start_seeds_two_chatflows_and_prints_how_to_call_them(tmp_path: Path) -> None:
    port = free_port()
    with started(tmp_path, port) as process:
        listed = httpx.get(f"http://127.0.0.1:{port}/api/v1/chatflows").json()
        flows = {flow["name"]: flow["id"] for flow in listed}
        assert sorted(flows) == ["Ask your documents", "Local chat (embedded SmolLM2)"]
        for chatflow_id in flows.values():
            streaming = httpx.get(f"http://127.0.0.1:{port}/api/v1/chatflows-streaming/{chatflow_id}").json()
            assert streaming == {"isStreaming": True}
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) in GRACEFUL
        output = read_output(process)
    chat, documents = flows["Local chat (embedded SmolLM2)"], flows["Ask your documents"]
    assert f"curl http://localhost:{port}/api/v1/predictions/{chat}" in output
    assert f"streamwise ingest {documents}" in output
    assert f"/api/v1/vector/upsert/{documents}" in output
    with started(tmp_path, port) as again:  # a second start finds them and does not seed again
        assert len(httpx.get(f"http://127.0.0.1:{port}/api/v1/chatflows").json()) == 2
        again.send_signal(signal.SIGTERM)
        assert again.wait(20) in GRACEFUL
        repeated = read_output(again)
        assert chat in repeated and documents in repeated


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
