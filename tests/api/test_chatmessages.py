"""Stored exchanges: listed with Flowise's filters, deleted, and remembered across turns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.api.helpers import create_flow, stream
from tests.support.flows import fake_flow
from tests.support.sse import check_invariant


async def test_each_exchange_stores_a_user_and_an_api_message(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["Hi", " there"]))
    await stream(client, chatflow_id, {"question": "Hello?", "chatId": "c1"})
    messages = (await client.get(f"/api/v1/chatmessage/{chatflow_id}")).json()
    assert [(m["role"], m["content"]) for m in messages] == [
        ("userMessage", "Hello?"),
        ("apiMessage", "Hi there"),
    ]
    api = messages[1]
    assert api["chatId"] == "c1" and api["chatType"] == "EXTERNAL" and api["status"] == "complete"
    assert api["chatflowid"] == chatflow_id


async def test_filters_by_chat_id_and_order(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["x"]))
    for chat_id in ("a", "b", "a"):
        await client.post(
            f"/api/v1/prediction/{chatflow_id}", json={"question": f"q-{chat_id}", "chatId": chat_id}
        )
    only_a = (await client.get(f"/api/v1/chatmessage/{chatflow_id}", params={"chatId": "a"})).json()
    assert len(only_a) == 4 and {m["chatId"] for m in only_a} == {"a"}
    newest_first = (await client.get(f"/api/v1/chatmessage/{chatflow_id}", params={"order": "DESC"})).json()
    assert newest_first[0]["role"] == "apiMessage" and newest_first[-1]["content"] == "q-a"
    bad = await client.get(f"/api/v1/chatmessage/{chatflow_id}", params={"order": "sideways"})
    assert bad.status_code == 400


async def test_delete_by_chat_id_keeps_the_other_chats(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["x"]))
    for chat_id in ("a", "b"):
        await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "chatId": chat_id})
    response = await client.delete(f"/api/v1/chatmessage/{chatflow_id}", params={"chatId": "a"})
    assert response.status_code == 200
    left = (await client.get(f"/api/v1/chatmessage/{chatflow_id}")).json()
    assert {m["chatId"] for m in left} == {"b"}


async def test_memory_remembers_earlier_turns_of_the_same_chat_only(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(memory="bufferMemory", echo=True))
    await stream(client, chatflow_id, {"question": "My name is Ada.", "chatId": "ada"})
    await stream(client, chatflow_id, {"question": "I like tea.", "chatId": "bob"})
    second = check_invariant(await stream(client, chatflow_id, {"question": "Who am I?", "chatId": "ada"}))
    assert "user: My name is Ada." in second
    assert "tea" not in second


async def test_history_in_the_body_seeds_memory(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(memory="bufferWindowMemory", echo=True))
    history = [
        {"role": "userMessage", "content": "I am Grace."},
        {"role": "apiMessage", "content": "Hi Grace."},
    ]
    text = check_invariant(await stream(client, chatflow_id, {"question": "Name?", "history": history}))
    assert "user: I am Grace. | assistant: Hi Grace. | user: Name?" in text


async def test_abort_with_nothing_running_answers_flowise_shape(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["x"]))
    response = await client.put(f"/api/v1/chatmessage/abort/{chatflow_id}/none")
    assert response.json()["message"] == "Chat message aborted"


async def test_messages_of_unknown_chatflow_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/chatmessage/none")).status_code == 404


async def test_date_chat_type_and_message_id_filters(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["x"]))
    answer = (await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q"})).json()
    url = f"/api/v1/chatmessage/{chatflow_id}"
    today = datetime.now(UTC).date()
    assert len((await client.get(url, params={"startDate": today.isoformat()})).json()) == 2
    yesterday = (today - timedelta(days=1)).isoformat()
    assert (await client.get(url, params={"endDate": yesterday})).json() == []
    assert len((await client.get(url, params={"chatType": '["EXTERNAL","INTERNAL"]'})).json()) == 2
    assert (await client.get(url, params={"chatType": "INTERNAL"})).json() == []
    [only] = (await client.get(url, params={"messageId": answer["chatMessageId"]})).json()
    assert only["role"] == "apiMessage" and only["content"] == "x"
    for bad in ({"startDate": "not-a-date"}, {"chatType": "ROBOT"}):
        response = await client.get(url, params=bad)
        assert response.status_code == 400 and response.json()["success"] is False
    removed = await client.delete(url, params={"startDate": today.isoformat(), "endDate": today.isoformat()})
    assert removed.json()["affected"] == 2
    assert (await client.get(url)).json() == []
