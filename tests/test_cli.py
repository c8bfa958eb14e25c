"""`streamwise start` as a user runs it: first-start seeding, and SIGTERM draining live streams."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.flows import fake_flow
from tests.support.server import free_port
from tests.support.sse import check_invariant, parse_frames, stream_acting_once

# uvicorn re-raises the signal once it has shut down gracefully, so the exit status reports SIGTERM.
GRACEFUL = (0, -signal.SIGTERM)


@contextmanager
def started(data_dir: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    env = {
        **os.environ,
        "STREAMWISE_DATA_DIR": str(data_dir),
        "STREAMWISE_PRELOAD_LOCAL_MODEL": "false",
        "STREAMWISE_SHUTDOWN_GRACE_SECONDS": "5",
    }
    env.pop("STREAMWISE_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "streamwise", "start", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/ping", timeout=1).text == "pong":
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def read_output(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.read()


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
