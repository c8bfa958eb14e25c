"""A Tool Agent in the shape Flowise 3.x exports (Tool Agent v2 ← Calculator v1 + Buffer Memory v2 +
ChatOpenAI v8.3 pointed at the stub) imports, calls the calculator and streams the final answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import create_flow, stream
from tests.support.flows import stub_calls
from tests.support.openai_stub import StubServer, expected_text, serve_in_thread
from tests.support.sse import check_invariant

EXPORT = Path(__file__).resolve().parents[1] / "fixtures" / "flowise3_toolagent.json"


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with serve_in_thread() as running:
        yield running


def exported(base_url: str, model: str) -> str:
    return json.dumps(
        json.loads(EXPORT.read_text().replace("__BASE_URL__", base_url).replace("__MODEL__", model))
    )


async def test_the_export_calls_the_calculator_and_streams_the_answer(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    model = stub_calls([("calculator", '{"input": "(17 + 25) * 3"}')], tokens=5, case="flowise-agent")
    chatflow_id = await create_flow(
        client, exported(stub.base_url, model), name="Calculator agent (from Flowise)"
    )
    frames = await stream(client, chatflow_id, {"question": "What is (17 + 25) * 3?", "chatId": "calc"})

    assert check_invariant(frames) == expected_text(5)
    names = [f.event for f in frames]
    assert names[0] == "start" and names[-3:] == ["usedTools", "metadata", "end"]
    assert [n for n in names if n not in ("token",)] == [
        "start",
        "calledTools",
        "usedTools",
        "metadata",
        "end",
    ]
    assert frames[-3].data == [
        {"tool": "calculator", "toolInput": {"input": "(17 + 25) * 3"}, "toolOutput": "126"}
    ]
    assert frames[-2].data["memoryType"] == "Buffer Memory"
    assert all("126" not in f.data for f in frames if f.event == "token")

    first, second = [r.body for r in stub.records() if r.model == model][-2:]
    assert first["messages"][0] == {
        "role": "system",
        "content": "You work out sums with the calculator and answer in one short sentence.",
    }
    assert first["tools"][0]["function"]["name"] == "calculator"
    assert first["temperature"] == 0
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_r0_0", "content": "126"}
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "calculator"

    history = (await client.get(f"/api/v1/chatmessage/{chatflow_id}", params={"chatId": "calc"})).json()
    assert history[1]["usedTools"] == frames[-3].data
