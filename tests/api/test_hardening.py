"""Hostile input against the routes, in-process: every case is a 4xx with Flowise's error JSON that
names the field (or node), answered promptly, and nothing is stored that should not be."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from streamwise.app import create_app
from streamwise.nodes.services import NodeServices
from streamwise.settings import Settings
from tests.api.helpers import create_flow
from tests.support.fake_model import probe
from tests.support.flows import chain_flow, edge, fake_flow, node, ref


def assert_error(response: httpx.Response, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["statusCode"] == status and body["success"] is False and body["stack"] == {}
    for fragment in fragments:
        assert fragment in body["message"], body["message"]
    message: str = body["message"]
    return message


async def stored_messages(client: httpx.AsyncClient, chatflow_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/chatmessage/{chatflow_id}")
    assert response.status_code == 200
    messages: list[dict[str, Any]] = response.json()
    return messages


def deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [100, 1000, 50_000])
async def test_deeply_nested_json_is_a_400_wherever_it_is_sent(client: httpx.AsyncClient, depth: int) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["ok"]))
    as_body = await client.post(
        f"/api/v1/prediction/{chatflow_id}",
        content=f'{{"question": "q", "overrideConfig": {deep(depth)}}}',
        headers={"content-type": "application/json"},
    )
    assert_error(as_body, 400, "nested deeper than 64 levels")
    as_form_field = await client.post(
        f"/api/v1/prediction/{chatflow_id}", data={"question": "q", "overrideConfig": deep(depth)}
    )
    assert_error(as_form_field, 400, "Field 'overrideConfig' is nested deeper")
    as_multipart_field = await client.post(
        f"/api/v1/prediction/{chatflow_id}",
        data={"question": "q", "history": "[" * depth + "]" * depth},
        files={"files": ("a.txt", b"x", "text/plain")},
    )
    assert_error(as_multipart_field, 400, "Field 'history' is nested deeper")
    as_flow_data = await client.post(
        "/api/v1/chatflows", json={"name": "deep", "flowData": '{"nodes": [' + deep(depth) + "]}"}
    )
    assert_error(as_flow_data, 400, "flowData is nested deeper")
    as_chatbot_config = await client.post(
        "/api/v1/chatflows", json={"name": "deep", "flowData": fake_flow(), "chatbotConfig": deep(depth)}
    )
    assert_error(as_chatbot_config, 400, "Field 'chatbotConfig' is nested deeper")
    assert len((await client.get("/api/v1/chatflows")).json()) == 1
    assert await stored_messages(client, chatflow_id) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"question": "\\ud800"}', "question"),
        ('{"question": "hi \\udfff there"}', "question"),
        ('{"question": "q", "chatId": "\\ud800"}', "chatId"),
        ('{"question": "q", "overrideConfig": {"sessionId": "\\udbff"}}', "overrideConfig.sessionId"),
        (
            '{"question": "q", "history": [{"role": "userMessage", "content": "\\ud800"}]}',
            "history[0].content",
        ),
    ],
)
async def test_a_lone_surrogate_in_a_prediction_is_a_400_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient, body: str, field: str
) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["ok"]))
    for streaming in ("true", "false"):
        response = await client.post(
            f"/api/v1/prediction/{chatflow_id}",
            content=body[:-1] + f', "streaming": {streaming}}}',
            headers={"content-type": "application/json"},
        )
        assert_error(response, 400, f"field '{field}'", "unpaired surrogate")
    assert await stored_messages(client, chatflow_id) == []


async def test_a_lone_surrogate_in_a_chatflow_is_a_400_and_no_row(client: httpx.AsyncClient) -> None:
    flow = json.dumps(fake_flow(tokens=["ok"]))  # flowData as a JSON string inside the body
    for body, field in (
        ('{"name": "\\ud800", "flowData": ' + flow + "}", "name"),
        ('{"name": "n", "flowData": ' + flow + ', "category": "\\udc00"}', "category"),
        ('{"name": "n", "flowData": "{\\"nodes\\": [\\"\\\\ud800\\"]}"}', "nodes[0]"),
    ):
        response = await client.post(
            "/api/v1/chatflows", content=body, headers={"content-type": "application/json"}
        )
        assert_error(response, 400, f"field '{field}'", "unpaired surrogate")
    assert (await client.get("/api/v1/chatflows")).json() == []


def _with(flow_data: str, change: Any) -> str:
    flow = json.loads(flow_data)
    change(flow)
    return json.dumps(flow)


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (lambda f: f["nodes"][0]["data"].update(inputParams=5), ["Node fake_0", "inputParams"]),
        (lambda f: f["nodes"][0]["data"].update(inputs=[1]), ["Node fake_0", "data.inputs"]),
        (lambda f: f["nodes"][0].update(data="x"), ["Node fake_0", "data"]),
        (lambda f: f["nodes"][1].update(id=["x"]), ["Node #1", "field 'id'"]),
        (lambda f: f["edges"][0].update(source=["fake_0"]), ["Edge", "source"]),
        (lambda f: f["edges"].append(17), ["Edge #1 must be an object"]),
        (lambda f: f.update(nodes={"a": 1}), ["flowData field 'nodes'"]),
        (lambda f: f.update(edges="none"), ["flowData field 'edges'"]),
    ],
)
async def test_flow_data_of_the_wrong_shape_is_a_400_naming_the_node_and_the_field(
    client: httpx.AsyncClient, change: Any, fragments: list[str]
) -> None:
    response = await client.post(
        "/api/v1/chatflows", json={"name": "bad", "flowData": _with(fake_flow(), change)}
    )
    assert_error(response, 400, *fragments)
    assert (await client.get("/api/v1/chatflows")).json() == []


@pytest.mark.parametrize(
    ("flow_data", "fragments"),
    [
        (
            json.dumps(
                {"nodes": [node("conversationChain_0", "conversationChain", "Chains", {})], "edges": []}
            ),
            ["conversationChain_0", "'model' must be connected"],
        ),
        (
            chain_flow(node("chatOpenAI_0", "chatOpenAI", "Chat Models", {"temperature": "warm"})),
            ["temperature"],
        ),
        (fake_flow(delayMs="soon"), ["fake_0", "delayMs"]),
        (chain_flow(node("ollama_0", "chatOllama", "Chat Models", {})), ["ollama_0", "model name"]),
        (
            json.dumps(
                {
                    "nodes": [
                        node("memory_0", "bufferMemory", "Memory", {}),
                        node(
                            "conversationChain_0", "conversationChain", "Chains", {"model": ref("memory_0")}
                        ),
                    ],
                    "edges": [edge("memory_0", "conversationChain_0", "model")],
                }
            ),
            ["conversationChain_0", "'model' must be a ChatModel node"],
        ),
    ],
)
async def test_a_graph_that_cannot_run_is_refused_at_save_time_as_at_run_time(
    client: httpx.AsyncClient, flow_data: str, fragments: list[str]
) -> None:
    created = await client.post("/api/v1/chatflows", json={"name": "broken", "flowData": flow_data})
    assert_error(created, 400, *fragments)
    good = await create_flow(client, fake_flow(tokens=["ok"]))
    updated = await client.put(f"/api/v1/chatflows/{good}", json={"flowData": flow_data})
    assert_error(updated, 400, *fragments)
    assert [flow["id"] for flow in (await client.get("/api/v1/chatflows")).json()] == [good]
    assert (await client.post(f"/api/v1/prediction/{good}", json={"question": "q"})).json()["text"] == "ok"


async def test_a_graph_over_the_node_limit_is_refused_at_once(client: httpx.AsyncClient) -> None:
    many = [node(f"memory_{i}", "bufferMemory", "Memory", {}) for i in range(20_000)]
    flow = json.loads(fake_flow())
    flow["nodes"].extend(many)
    started = time.perf_counter()
    response = await client.post("/api/v1/chatflows", json={"name": "huge", "flowData": json.dumps(flow)})
    elapsed = time.perf_counter() - started
    assert_error(response, 400, "20,002 nodes", "limit is 1,000", "STREAMWISE_MAX_FLOW_NODES")
    assert elapsed < 10  # generous; it was 12.6 s of frozen server before limits


@pytest.mark.parametrize(
    "chatflow_id", ["a/b", "x" * 37, "x" * 100_000, "../etc", "has space", "-leading-dash", "naïve", ""]
)
async def test_chatflow_ids_outside_the_safe_form_are_refused(
    client: httpx.AsyncClient, chatflow_id: str
) -> None:
    response = await client.post(
        "/api/v1/chatflows", json={"id": chatflow_id, "name": "n", "flowData": fake_flow()}
    )
    if chatflow_id == "":
        assert response.status_code == 200  # empty means "pick one", as Flowise does
        return
    assert_error(response, 400, "Field 'id' must be 1 to 36 letters, digits")
    assert (await client.get("/api/v1/chatflows")).json() == []


async def test_a_chatflow_with_a_safe_chosen_id_can_be_read_run_and_deleted(
    client: httpx.AsyncClient,
) -> None:
    for chatflow_id in ("support-bot_2", "A" * 36, "0"):
        created = await client.post(
            "/api/v1/chatflows", json={"id": chatflow_id, "name": "n", "flowData": fake_flow(tokens=["ok"])}
        )
        assert created.status_code == 200, created.text
        assert (await client.get(f"/api/v1/chatflows/{chatflow_id}")).status_code == 200
        run = await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q"})
        assert run.json()["text"] == "ok"
        assert (await client.delete(f"/api/v1/chatflows/{chatflow_id}")).status_code == 200


@pytest.mark.parametrize("turns", [1001, 50_000, 200_000])
async def test_history_over_the_turn_limit_is_a_400_at_once(client: httpx.AsyncClient, turns: int) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["ok"]))
    history = [{"role": "userMessage", "content": "x"}] * turns
    started = time.perf_counter()
    response = await client.post(
        f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "history": history, "streaming": True}
    )
    assert_error(response, 400, f"'history' has {turns:,} turns", "limit is 1,000")
    assert time.perf_counter() - started < 10
    assert await stored_messages(client, chatflow_id) == []


async def test_a_question_over_the_message_limit_is_a_400(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["ok"]))
    response = await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q" * 200_001})
    assert_error(response, 400, "'question' is 200,001 characters long")


async def test_memory_sends_at_most_the_history_limit(settings: Settings, services: NodeServices) -> None:
    app = create_app(settings.model_copy(update={"max_history_turns": 4}), services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as http:
            chatflow_id = await create_flow(http, fake_flow(memory="bufferMemory", tokens=["a"], probe="mem"))
            for number in range(5):
                body = {"question": f"q{number}", "chatId": "c"}
                assert (await http.post(f"/api/v1/prediction/{chatflow_id}", json=body)).status_code == 200
        sent = [f"{turn.role}: {turn.content}" for turn in probe(services, "mem").last_messages]
    assert sent == ["system: Be brief.", "user: q2", "assistant: a", "user: q3", "assistant: a", "user: q4"]


async def test_a_model_path_outside_the_model_directories_is_refused_revealing_nothing(
    client: httpx.AsyncClient,
) -> None:
    for model_path in ("/etc/passwd", "/proc/self/cwd", "~", "../../../etc/shadow", "/tmp/nope.gguf"):
        flow = chain_flow(
            node("chatLocalModel_0", "chatLocalModel", "Chat Models", {"modelPath": model_path})
        )
        response = await client.post("/api/v1/chatflows", json={"name": "local", "flowData": flow})
        message = assert_error(response, 400, "chatLocalModel_0", "model directories")
        for secret in (os.getcwd(), sys.executable, str(os.getpid()), "exist", "passwd", "/proc", "/tmp"):
            assert secret not in message, (model_path, message)


async def test_a_model_path_cannot_be_overridden_by_a_request(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["ok"]))
    response = await client.post(
        f"/api/v1/prediction/{chatflow_id}",
        json={"question": "q", "overrideConfig": {"modelPath": "/etc/passwd", "basePath": "http://evil"}},
    )
    assert response.json()["text"] == "ok"


async def test_405_names_every_method_the_path_serves(client: httpx.AsyncClient) -> None:
    response = await client.patch("/api/v1/chatflows")
    assert_error(response, 405)
    assert response.headers["allow"] == "GET, POST"
    item = await client.post("/api/v1/chatflows/abc")
    assert item.status_code == 405 and item.headers["allow"] == "DELETE, GET, PUT"


async def test_big_chatflows_leave_nothing_in_the_cache_once_deleted_or_updated(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    cache = app.state.streamwise.chatflow_cache
    filler = "z" * 2_000_000
    ids = []
    for number in range(5):
        flow = json.loads(fake_flow(tokens=["ok"]))
        flow["nodes"][0]["data"]["inputs"]["note"] = filler + str(number)
        ids.append(await create_flow(client, json.dumps(flow)))
        assert (await client.post(f"/api/v1/prediction/{ids[-1]}", json={"question": "q"})).status_code == 200
    assert cache.bytes > 5 * len(filler)
    await client.put(f"/api/v1/chatflows/{ids[0]}", json={"flowData": fake_flow(tokens=["new"])})
    assert (await client.post(f"/api/v1/prediction/{ids[0]}", json={"question": "q"})).json()["text"] == "new"
    for chatflow_id in ids:
        assert (await client.delete(f"/api/v1/chatflows/{chatflow_id}")).status_code == 200
    assert len(cache) == 0 and cache.bytes == 0
