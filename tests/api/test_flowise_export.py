"""A graph in the shape Flowise 3.x exports (ChatOpenAI v8 with basepath and a credential id that
means nothing here, Conversation Chain v3, Buffer Memory v2) imports and holds a conversation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import create_flow, stream
from tests.support.flows import overrides_enabled
from tests.support.openai_stub import StubServer, expected_text, serve_in_thread
from tests.support.sse import check_invariant

EXPORT = Path(__file__).resolve().parents[1] / "fixtures" / "flowise3_conversation.json"


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with serve_in_thread() as running:
        yield running


def exported_flow(base_url: str, model: str) -> str:
    text = EXPORT.read_text().replace("__BASE_URL__", base_url).replace("__MODEL__", model)
    return json.dumps(json.loads(text))


async def test_flowise_export_imports_streams_and_remembers(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    model = "stub?tokens=12&case=export"
    chatflow_id = await create_flow(client, exported_flow(stub.base_url, model), name="Imported from Flowise")
    assert (await client.get(f"/api/v1/chatflows-streaming/{chatflow_id}")).json() == {"isStreaming": True}

    frames = await stream(client, chatflow_id, {"question": "My name is Ada.", "chatId": "x1"})
    first = check_invariant(frames)
    assert first == expected_text(12)
    # As Flowise sends it for this chain: `start` is the model's first delta (OpenAI's is empty).
    assert (frames[0].event, frames[0].data, frames[1].data) == ("start", "", "t0 ")
    await stream(client, chatflow_id, {"question": "What is my name?", "chatId": "x1"})

    sent = stub.last(model).body
    assert sent["model"] == model and sent["stream"] is True
    assert sent["temperature"] == pytest.approx(0.4)
    assert sent["messages"] == [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": expected_text(12)},
        {"role": "user", "content": "What is my name?"},
    ]


async def test_a_request_may_override_temperature_as_in_flowise(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    model = "stub?tokens=3&case=override"
    chatflow_id = await create_flow(client, exported_flow(stub.base_url, model))
    # As Flowise 2.x+ asks: the chatflow enables the overrides (basepath too: it stays protected).
    api_config = overrides_enabled("ChatOpenAI", "temperature", "basepath")
    put = await client.put(f"/api/v1/chatflows/{chatflow_id}", json={"apiConfig": api_config})
    assert put.status_code == 200, put.text
    body = {"question": "hi", "overrideConfig": {"temperature": 0.05, "basepath": "http://10.0.0.1/v1"}}
    response = await client.post(f"/api/v1/prediction/{chatflow_id}", json=body)
    assert response.status_code == 200, response.text
    assert stub.last(model).body["temperature"] == pytest.approx(0.05)
