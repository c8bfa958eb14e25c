"""The real `flowise-sdk` npm package (1.0.9) under Node, against a live server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.support.flows import fake_flow
from tests.support.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("sdk_stream.mjs")

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "flowise-sdk").is_dir(),
    reason="needs Node and `npm ci` (make test runs it)",
)


class HasBaseUrl(Protocol):
    @property
    def base_url(self) -> str: ...


def run_sdk(
    server: HasBaseUrl, chatflow_id: str, question: str, streaming: bool, api_key: str | None = None
) -> list[Any]:
    completed = subprocess.run(
        [
            "node",
            str(SCRIPT),
            server.base_url,
            chatflow_id,
            question,
            "true" if streaming else "false",
            *([api_key] if api_key else []),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]


def test_streaming_with_for_await_yields_each_event(server: LiveServer) -> None:
    tokens = ["Once", " upon", " a", " time", " 🐉", "\nend"]
    chatflow_id = server.create_flow(fake_flow(tokens=tokens))
    events = run_sdk(server, chatflow_id, "Tell me a story", streaming=True)
    assert events[0]["event"] == "start"
    assert [event["data"] for event in events if event["event"] == "token"] == tokens
    assert events[-1] == {"event": "end", "data": "[DONE]"}


def test_non_streaming_returns_the_json_response(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["plain"]))
    [response] = run_sdk(server, chatflow_id, "Hi", streaming=False)
    assert response["text"] == "plain"
