"""/api/v1/feedback: thumbs up/down on an answer, as Flowise takes them."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.api.helpers import create_flow
from tests.support.flows import fake_flow


async def _answered(client: httpx.AsyncClient, *, enabled: bool = True) -> tuple[str, str, str]:
    """A chatflow with feedback enabled (or not) and one answer: (chatflow id, chat id, message id)."""
    chatflow_id = await create_flow(client, fake_flow(tokens=["Hi"]))
    config = {"chatFeedback": {"status": enabled}}
    await client.put(f"/api/v1/chatflows/{chatflow_id}", json={"chatbotConfig": json.dumps(config)})
    answer = await client.post(
        f"/api/v1/prediction/{chatflow_id}", json={"question": "Hello", "chatId": "c1"}
    )
    assert answer.status_code == 200, answer.text
    return chatflow_id, "c1", answer.json()["chatMessageId"]


@pytest.mark.parametrize("in_path", [False, True])
async def test_thumbs_up_then_a_comment(client: httpx.AsyncClient, in_path: bool) -> None:
    chatflow_id, chat_id, message_id = await _answered(client)
    body = {
        "chatflowid": chatflow_id,
        "chatId": chat_id,
        "messageId": message_id,
        "rating": "THUMBS_UP",
        "content": "",
    }
    url = f"/api/v1/feedback/{chatflow_id}" if in_path else "/api/v1/feedback"
    created = await client.post(url, json=body)
    assert created.status_code == 200, created.text
    feedback = created.json()
    assert feedback["rating"] == "THUMBS_UP" and feedback["messageId"] == message_id
    assert feedback["chatflowid"] == chatflow_id and feedback["chatId"] == chat_id
    changed = await client.put(f"/api/v1/feedback/{feedback['id']}", json={"content": "Great answer"})
    assert changed.json() == {"status": "OK"}
    listed = (await client.get(f"/api/v1/feedback/{chatflow_id}")).json()
    assert [(item["id"], item["content"]) for item in listed] == [(feedback["id"], "Great answer")]
    again = await client.post(url, json=body)
    assert again.status_code == 409


async def test_filters(client: httpx.AsyncClient) -> None:
    chatflow_id, chat_id, message_id = await _answered(client)
    await client.post("/api/v1/feedback", json={"messageId": message_id, "rating": "THUMBS_DOWN"})
    url = f"/api/v1/feedback/{chatflow_id}"
    assert len((await client.get(url, params={"chatId": chat_id})).json()) == 1
    assert (await client.get(url, params={"chatId": "other"})).json() == []
    assert (await client.get(url, params={"endDate": "2000-01-01"})).json() == []
    assert len((await client.get(url, params={"startDate": "2000-01-01", "order": "desc"})).json()) == 1
    assert (await client.get(url, params={"startDate": "yesterday"})).status_code == 400
    assert (await client.get(url, params={"order": "sideways"})).status_code == 400
    assert (await client.get("/api/v1/feedback/nope")).status_code == 404


async def test_refusals(client: httpx.AsyncClient) -> None:
    _, _, message_id = await _answered(client)
    cases = [
        ({"rating": "THUMBS_UP"}, 400, "Message ID is required"),
        ({"messageId": "nope", "rating": "THUMBS_UP"}, 404, "Message with ID nope not found"),
        ({"messageId": message_id, "chatId": "c2"}, 400, "Inconsistent chat ID"),
        ({"messageId": message_id, "chatflowid": "other"}, 400, "Inconsistent chatflow ID"),
        ({"messageId": message_id, "rating": "MEH"}, 400, "rating"),
    ]
    for body, status, message in cases:
        response = await client.post("/api/v1/feedback", json=body)
        assert response.status_code == status, (body, response.text)
        assert message in response.json()["message"]
    assert (await client.put("/api/v1/feedback/nope", json={"content": "x"})).status_code == 404


async def test_only_when_the_chatflow_enables_it(client: httpx.AsyncClient) -> None:
    _, _, message_id = await _answered(client, enabled=False)
    response = await client.post("/api/v1/feedback", json={"messageId": message_id, "rating": "THUMBS_UP"})
    assert response.status_code == 400
    assert "not enabled" in response.json()["message"]


async def test_a_malformed_sort_order_is_refused_even_beside_a_good_one(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["x"]))
    answer = await client.get(
        f"/api/v1/feedback/{chatflow_id}", params={"order": "DESC", "sortOrder": "sideways"}
    )
    assert answer.status_code == 400 and "ASC or DESC" in answer.json()["message"]
