"""A request's `overrideConfig` reaches a node input only when the chatflow's `apiConfig` enables it,
as in Flowise 2.x+; `sessionId` is a request key and is never gated."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi import FastAPI

from tests.support.fake_retrieval import store_for
from tests.support.flows import fake_flow, fake_model, rag_flow

PIRATE = {"systemMessagePrompt": "Be a pirate."}


def with_labels(flow_data: str) -> str:
    """The flow with the display labels Flowise gives these node types (its UI keys overrides by them)."""
    labels = {"conversationChain": "Conversation Chain", "fakeTextLoader": "Fake Text Loader"}
    flow = json.loads(flow_data)
    for item in flow["nodes"]:
        item["data"]["label"] = labels.get(item["data"]["name"], item["data"]["label"])
    return json.dumps(flow)


def api_config(label: str, *names: str, status: bool = True) -> str:
    """apiConfig text as Flowise's "Override Configuration" dialog saves it."""
    params = [{"label": name, "name": name, "type": "string", "enabled": True} for name in names]
    return json.dumps({"overrideConfig": {"status": status, "nodes": {label: params}, "variables": []}})


async def create(client: httpx.AsyncClient, flow_data: str, config: str | None = None) -> str:
    record: dict[str, Any] = {"name": "override policy", "flowData": flow_data}
    if config is not None:
        record["apiConfig"] = config
    response = await client.post("/api/v1/chatflows", json=record)
    assert response.status_code == 200, response.text
    chatflow_id: str = response.json()["id"]
    return chatflow_id


async def system_message(client: httpx.AsyncClient, chatflow_id: str, override: dict[str, Any]) -> str:
    response = await client.post(
        f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "overrideConfig": override}
    )
    assert response.status_code == 200, response.text
    text: str = response.json()["text"]
    return text.split(" | ")[0]


async def test_an_override_applies_only_when_the_chatflow_enables_it(client: httpx.AsyncClient) -> None:
    flow = with_labels(fake_flow(echo=True))
    closed = await create(client, flow)
    opened = await create(client, flow, api_config("Conversation Chain", "systemMessagePrompt"))
    assert await system_message(client, closed, PIRATE) == "system: Be brief."
    assert await system_message(client, opened, PIRATE) == "system: Be a pirate."
    keyed = {"systemMessagePrompt": {"conversationChain_0": "Be a parrot."}}
    assert await system_message(client, opened, keyed) == "system: Be a parrot."


async def test_enabling_another_input_or_another_node_enables_nothing_here(client: httpx.AsyncClient) -> None:
    flow = with_labels(fake_flow(echo=True))
    for config in (
        api_config("Conversation Chain", "memory"),
        api_config("conversationChain", "systemMessagePrompt"),  # the node's name, not its label
        api_config("Conversation Chain", "systemMessagePrompt", status=False),
    ):
        chatflow_id = await create(client, flow, config)
        assert await system_message(client, chatflow_id, PIRATE) == "system: Be brief.", config


async def test_a_put_of_api_config_turns_overrides_on_and_off_at_once(client: httpx.AsyncClient) -> None:
    chatflow_id = await create(client, with_labels(fake_flow(echo=True)))
    assert await system_message(client, chatflow_id, PIRATE) == "system: Be brief."
    on = json.loads(api_config("Conversation Chain", "systemMessagePrompt"))
    put = await client.put(
        f"/api/v1/chatflows/{chatflow_id}", json={"apiConfig": on}
    )  # an object is taken too
    assert put.status_code == 200, put.text
    assert json.loads(put.json()["apiConfig"]) == on
    assert await system_message(client, chatflow_id, PIRATE) == "system: Be a pirate."
    off = api_config("Conversation Chain", "systemMessagePrompt", status=False)
    assert (await client.put(f"/api/v1/chatflows/{chatflow_id}", json={"apiConfig": off})).status_code == 200
    assert await system_message(client, chatflow_id, PIRATE) == "system: Be brief."


async def test_session_id_needs_no_enabling(client: httpx.AsyncClient) -> None:
    chatflow_id = await create(client, with_labels(fake_flow(memory="bufferMemory", tokens=["ok"])))
    response = await client.post(
        f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "overrideConfig": {"sessionId": "s-1"}}
    )
    body = response.json()
    assert (body["chatId"], body["sessionId"]) == ("s-1", "s-1")


async def test_an_upsert_takes_loader_inputs_only_when_enabled(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    flow = with_labels(rag_flow(fake_model(), texts=["saved"]))
    override = {"overrideConfig": {"texts": json.dumps(["given"])}}
    for config, expected in ((None, "saved"), (api_config("Fake Text Loader", "texts"), "given")):
        chatflow_id = await create(client, flow, config)
        answer = await client.post(f"/api/v1/vector/upsert/{chatflow_id}", json=override)
        assert answer.status_code == 200, answer.text
        store = store_for(app.state.streamwise.registry.services, chatflow_id, "vectorStore_0")
        assert [document.page_content for document, _ in store.entries.values()] == [expected]


async def test_uploaded_files_need_no_enabling(client: httpx.AsyncClient) -> None:
    chatflow_id = await create(client, with_labels(rag_flow(fake_model(), texts=[])))
    answer = await client.post(
        f"/api/v1/vector/upsert/{chatflow_id}", files=[("files", ("notes.fake", b"a line\n", "text/plain"))]
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["numAdded"] == 1
