"""POST /api/v1/prediction/{id}: streaming and JSON answers, and every kind of bad request."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI

from streamwise.app import create_app
from streamwise.nodes.services import NodeServices
from streamwise.settings import Settings
from tests.api.helpers import create_flow, stream
from tests.support.flows import fake_flow, overrides_enabled
from tests.support.sse import check_invariant, parse_frames


async def test_streaming_answer_is_framed_as_flowise_and_ends_with_metadata_then_end(
    client: httpx.AsyncClient,
) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["Hello", " world", "!"]))
    response = await client.post(
        f"/api/v1/prediction/{chatflow_id}", json={"question": "Hi", "streaming": True, "chatId": "c1"}
    )
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    run = response.headers["x-run-id"].encode()
    assert response.content.startswith(
        b'message:\ndata:{"event":"start","data":"Hello"}\nid:' + run + b":1\n\n"
        b'message:\ndata:{"event":"token","data":"Hello"}\nid:' + run + b":2\n\n"
        b'message:\ndata:{"event":"token","data":" world"}\nid:' + run + b":3\n\n"
    )
    assert response.content.endswith(b'message:\ndata:{"event":"end","data":"[DONE]"}\nid:' + run + b":6\n\n")
    frames = parse_frames(response.content)
    assert check_invariant(frames) == "Hello world!"
    metadata = frames[-2]
    assert metadata.event == "metadata"
    assert metadata.data["chatId"] == "c1" and metadata.data["question"] == "Hi"


async def test_predictions_plural_path_is_served_too(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["ok"]))
    response = await client.post(f"/api/v1/predictions/{chatflow_id}", json={"question": "Hello world!"})
    assert response.json()["text"] == "ok"


async def test_json_answer_has_flowise_fields_and_the_same_text_as_the_stream(
    client: httpx.AsyncClient,
) -> None:
    chatflow_id = await create_flow(client, fake_flow(memory="bufferMemory", tokenCount=40))
    streamed = check_invariant(await stream(client, chatflow_id, {"question": "q", "chatId": "s"}))
    response = await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "chatId": "j"})
    body = response.json()
    assert response.status_code == 200
    assert body["text"] == streamed
    assert body["question"] == "q" and body["chatId"] == "j" and body["sessionId"] == "j"
    assert body["memoryType"] == "Buffer Memory"
    assert isinstance(body["chatMessageId"], str)


async def test_chat_id_falls_back_to_session_id_then_a_new_uuid(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["x"]))
    via_session = await client.post(
        f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "overrideConfig": {"sessionId": "sess"}}
    )
    assert via_session.json()["chatId"] == "sess"
    fresh = await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q"})
    assert len(fresh.json()["chatId"]) == 36


async def test_a_flow_that_cannot_stream_answers_json_even_when_streaming_is_asked(
    client: httpx.AsyncClient,
) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["a", "b"], streaming=False))
    check = await client.get(f"/api/v1/chatflows-streaming/{chatflow_id}")
    assert check.json() == {"isStreaming": False}
    response = await client.post(
        f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "streaming": True}
    )
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["text"] == "ab"


async def test_streaming_check_is_true_for_a_streaming_model(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["a"]))
    assert (await client.get(f"/api/v1/chatflows-streaming/{chatflow_id}")).json() == {"isStreaming": True}


async def test_override_config_reaches_node_inputs(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(echo=True))
    api_config = overrides_enabled("conversationChain", "systemMessagePrompt")
    put = await client.put(f"/api/v1/chatflows/{chatflow_id}", json={"apiConfig": api_config})
    assert put.status_code == 200, put.text
    response = await client.post(
        f"/api/v1/prediction/{chatflow_id}",
        json={"question": "q", "overrideConfig": {"systemMessagePrompt": "Be a pirate."}},
    )
    assert "system: Be a pirate." in response.json()["text"]


async def test_model_error_in_a_stream_is_error_then_end(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["a", "b", "c"], failAt=2))
    frames = await stream(client, chatflow_id, {"question": "q"})
    assert [f.event for f in frames] == ["start", "token", "token", "error", "end"]
    assert "scripted failure" in frames[3].data


async def test_model_error_without_streaming_is_a_502_with_flowise_error_json_naming_the_node(
    client: httpx.AsyncClient,
) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["a"], failAt=0))
    response = await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q"})
    assert response.status_code == 502
    body = response.json()
    assert body["success"] is False and body["statusCode"] == 502
    assert "fake_0" in body["message"] and "scripted failure" in body["message"]


@pytest.mark.parametrize("streaming", [True, False])
async def test_unknown_chatflow_is_404_promptly(client: httpx.AsyncClient, streaming: bool) -> None:
    response = await client.post("/api/v1/prediction/nope", json={"question": "q", "streaming": streaming})
    assert response.status_code == 404
    assert response.json() == {
        "statusCode": 404,
        "success": False,
        "message": "Chatflow nope not found",
        "stack": {},
    }


async def test_streaming_check_for_unknown_chatflow_is_404_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/chatflows-streaming/nope")
    assert response.status_code == 404 and response.json()["success"] is False


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b"{broken", "application/json", "not valid JSON"),
        (b"{}", "application/json", "'question' is required"),
        (b'{"question": 42}', "application/json", "'question' must be a string"),
        (b'{"question": null}', "application/json", "'question' is required"),
        (b"", "application/json", "empty"),
        (b"[]", "application/json", "JSON object"),
    ],
)
async def test_bad_bodies_are_400_with_flowise_error_json(
    client: httpx.AsyncClient, content: bytes, content_type: str, message: str
) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["a"]))
    response = await client.post(
        f"/api/v1/prediction/{chatflow_id}", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400 and body["success"] is False and message in body["message"]


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["a"]))
    huge = json.dumps({"question": "x" * (11 * 1024 * 1024)})
    response = await client.post(
        f"/api/v1/prediction/{chatflow_id}", content=huge, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and "limit" in response.json()["message"]


async def test_form_urlencoded_and_multipart_bodies_are_accepted(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["ok"]))
    form = await client.post(f"/api/v1/prediction/{chatflow_id}", data={"question": "hi", "chatId": "f"})
    assert form.json()["text"] == "ok" and form.json()["chatId"] == "f"
    multipart = await client.post(
        f"/api/v1/prediction/{chatflow_id}",
        data={"question": "hi", "streaming": "true"},
        files={"files": ("a.txt", b"hello", "text/plain")},
    )
    assert multipart.headers["content-type"] == "text/event-stream"


async def test_unknown_fields_such_as_chatflow_id_are_ignored(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["ok"]))
    response = await client.post(
        f"/api/v1/prediction/{chatflow_id}",
        json={"chatflowId": chatflow_id, "question": "q", "uploads": [], "form": None, "somethingElse": 1},
    )
    assert response.json()["text"] == "ok"


async def test_a_stored_flow_broken_later_is_a_400_naming_the_node_at_run_time(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["a"]))
    state = app.state.streamwise
    broken = json.loads(fake_flow(tokens=["a"]))
    broken["nodes"][0]["data"]["name"] = "vanishedNode"
    await state.chatflows.update(chatflow_id, {"flowData": json.dumps(broken)})
    response = await client.post(
        f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "streaming": True}
    )
    assert response.status_code == 400
    assert "fake_0" in response.json()["message"] and "vanishedNode" in response.json()["message"]


async def test_a_silent_stream_gets_heartbeat_comments(settings: Settings, services: NodeServices) -> None:
    app = create_app(settings.model_copy(update={"heartbeat_seconds": 0.05}), services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as http:
            chatflow_id = await create_flow(http, fake_flow(tokens=["slow", " answer"], delayMs=300))
            response = await http.post(
                f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "streaming": True}
            )
    assert b":heartbeat\n\n" in response.content
    assert check_invariant(parse_frames(response.content)) == "slow answer"
