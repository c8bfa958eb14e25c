"""Both real SDKs against a chatflow bound to an API key: with the key they stream as ever (the
streaming check they make first stays open and gets no key); without it they get a 401, not a hang."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator

import httpx
import pytest
from flowise import Flowise, PredictionData

from tests.clients.test_npm_sdk import ROOT, run_sdk
from tests.support.flows import fake_flow
from tests.support.server import LiveServer

TOKENS = ["Keyed", " and", " streaming"]


@pytest.fixture(scope="module")
def bound(server: LiveServer) -> Iterator[tuple[str, str]]:
    """(chatflow id, its key)."""
    created = asyncio.run_coroutine_threadsafe(server.state.keys.create("sdk"), server.loop).result(30)
    record = {"name": "bound", "flowData": fake_flow(tokens=TOKENS), "apikeyid": created.record.id}
    headers = {"Authorization": f"Bearer {created.key}"}
    made = httpx.post(f"{server.base_url}/api/v1/chatflows", json=record, headers=headers, timeout=10)
    assert made.status_code == 200, made.text
    yield made.json()["id"], created.key


def test_the_python_sdk_streams_with_the_key(server: LiveServer, bound: tuple[str, str]) -> None:
    chatflow_id, key = bound
    client = Flowise(base_url=server.base_url, api_key=key)
    chunks = list(
        client.create_prediction(PredictionData(chatflowId=chatflow_id, question="Hi", streaming=True))
    )
    events = [json.loads(chunk) for chunk in chunks]
    assert [event["data"] for event in events if event["event"] == "token"] == TOKENS
    assert events[-1]["event"] == "end"


def test_the_python_sdk_without_the_key_gets_no_answer(server: LiveServer, bound: tuple[str, str]) -> None:
    chatflow_id, _ = bound
    client = Flowise(base_url=server.base_url, api_key="sw_000000000000_" + "x" * 43)
    with pytest.raises(Exception, match="401"):
        list(client.create_prediction(PredictionData(chatflowId=chatflow_id, question="Hi", streaming=False)))


@pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "flowise-sdk").is_dir(),
    reason="needs Node and `npm ci` (make test runs it)",
)
def test_the_npm_sdk_streams_with_the_key(server: LiveServer, bound: tuple[str, str]) -> None:
    chatflow_id, key = bound
    events = run_sdk(server, chatflow_id, "Hi", streaming=True, api_key=key)
    assert [event["data"] for event in events if event["event"] == "token"] == TOKENS
    assert events[-1] == {"event": "end", "data": "[DONE]"}
