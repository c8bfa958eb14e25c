from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from streamwise.engine.ports import ChatModel, ChatTurn
from streamwise.errors import NodeConfigError
from streamwise.nodes.models import chat_ollama
from streamwise.nodes.models.chat_ollama import ChatOllama
from streamwise.nodes.models.errors import ModelError
from streamwise.nodes.services import NodeServices
from tests.support.openai_stub import StubServer, expected_text

QUESTION = [ChatTurn("system", "be brief"), ChatTurn("user", "hi")]


def build(services: NodeServices, stub: StubServer, **inputs: Any) -> ChatOllama:
    return chat_ollama.build("chatOllama_0", {"baseUrl": stub.url, **inputs}, services)


async def collect(model: ChatModel) -> list[str]:
    return [chunk async for batch in model.stream(QUESTION) for chunk in batch]


async def test_tokens_arrive_in_order_and_join_to_the_answer(
    stub: StubServer, services: NodeServices
) -> None:
    node = build(services, stub, modelName="stub?tokens=50&case=ollama-order")

    chunks = await collect(node)

    assert isinstance(node, ChatModel) and node.can_stream
    assert chunks == [f"t{i} " for i in range(50)]
    record = stub.last("stub?tokens=50&case=ollama-order")
    assert record.path == "/api/chat" and record.completed and not record.disconnected
    assert record.body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]


async def test_non_streaming_yields_the_whole_answer_once(stub: StubServer, services: NodeServices) -> None:
    node = build(services, stub, modelName="stub?tokens=30&case=ollama-whole", streaming="false")

    chunks = await collect(node)

    assert not node.can_stream
    assert chunks == [expected_text(30)]
    assert stub.last("stub?tokens=30&case=ollama-whole").body["stream"] is False


async def test_error_status_before_the_first_token_is_a_model_error(
    stub: StubServer, services: NodeServices
) -> None:
    node = build(
        services, stub, modelName='stub?status=404&message=model "x" not found, try pulling it first'
    )

    with pytest.raises(ModelError) as caught:
        await collect(node)

    assert caught.value.status == 404
    assert str(caught.value) == (
        "Node chatOllama_0 (ChatOllama): the model server does not know this model or endpoint (HTTP 404)"
    )
    assert 'model "x" not found' in (caught.value.detail or "") and stub.url in (caught.value.detail or "")


@pytest.mark.parametrize("failure", ["drop", "error"])
async def test_a_failure_after_k_tokens_yields_them_then_raises(
    stub: StubServer, services: NodeServices, failure: str
) -> None:
    node = build(services, stub, modelName=f"stub?tokens=20&{failure}=5&message=went wrong")
    chunks: list[str] = []

    with pytest.raises(ModelError) as caught:
        async for chunk in node.stream(QUESTION):
            chunks.extend(chunk)

    assert chunks == [f"t{i} " for i in range(5)]
    expected = "reported an error mid-answer" if failure == "error" else "broke off the answer"
    assert expected in str(caught.value) and "went wrong" not in str(caught.value)


async def test_cancelling_the_consumer_closes_the_upstream_response(
    stub: StubServer, services: NodeServices
) -> None:
    model = "stub?tokens=1000&delay=0.01&case=ollama-cancel"
    node = build(services, stub, modelName=model)
    received: list[str] = []
    three_received = asyncio.Event()

    async def consume() -> None:
        async for chunk in node.stream(QUESTION):
            received.extend(chunk)
            if len(received) >= 3:
                three_received.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(5):
        await three_received.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    record = await stub.wait_for(lambda r: r.model == model and r.disconnected)
    assert record.tokens_sent < len(received) + 20


async def test_closing_the_generator_closes_the_upstream_response(
    stub: StubServer, services: NodeServices
) -> None:
    model = "stub?tokens=1000&delay=0.01&case=ollama-aclose"
    stream = build(services, stub, modelName=model).stream(QUESTION)

    first = [chunk for _ in range(3) for chunk in await anext(stream)]
    await stream.aclose()

    record = await stub.wait_for(lambda r: r.model == model and r.disconnected)
    assert first[:3] == ["t0 ", "t1 ", "t2 "]
    assert record.tokens_sent < 3 + 20


async def test_an_answer_without_its_done_line_is_a_model_error(services: NodeServices) -> None:
    def cut_short(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"message":{"role":"assistant","content":"Hel"},"done":false}\n')

    http = httpx.AsyncClient(transport=httpx.MockTransport(cut_short))
    services.cache["chatOllama.http"] = http
    node = ChatOllama(services, base_url="http://127.0.0.1:9", body={"model": "m"})
    chunks: list[str] = []

    with pytest.raises(ModelError, match="broke off the answer"):
        async for chunk in node.stream(QUESTION):
            chunks.extend(chunk)

    assert chunks == ["Hel"]
    await http.aclose()


async def test_an_unreachable_server_is_a_model_error(services: NodeServices) -> None:
    node = chat_ollama.build(
        "chatOllama_0", {"baseUrl": "http://127.0.0.1:9", "modelName": "llama3"}, services
    )

    with pytest.raises(ModelError, match=r"^Node chatOllama_0 \(ChatOllama\): could not reach") as caught:
        await collect(node)
    assert "127.0.0.1:9" not in str(caught.value) and "127.0.0.1:9" in (caught.value.detail or "")


async def test_one_http_client_serves_every_node(stub: StubServer, services: NodeServices) -> None:
    first = build(services, stub, modelName="a")
    second = chat_ollama.build("chatOllama_1", {"baseUrl": "http://127.0.0.1:9", "modelName": "b"}, services)

    assert first.http is second.http


async def test_flowise_inputs_reach_the_request_body(stub: StubServer, services: NodeServices) -> None:
    model = "stub?tokens=1&case=ollama-inputs"
    node = build(
        services,
        stub,
        modelName=model,
        temperature="0.2",
        topP=0.5,
        topK="40",
        numCtx=4096,
        numPredict="128",
        repeatPenalty="1.1",
        stop="User:, END",
        keepAlive="10m",
        jsonMode=True,
        mirostat="",
        credential="cred-id",
        allowImageUploads=True,
    )

    await collect(node)

    body = stub.last(model).body
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.5,
        "top_k": 40,
        "num_ctx": 4096,
        "num_predict": 128,
        "repeat_penalty": 1.1,
        "stop": ["User:", "END"],
    }
    assert body["keep_alive"] == "10m" and body["format"] == "json" and body["stream"] is True
    assert "think" not in body


async def test_temperature_defaults_to_flowise_default(stub: StubServer, services: NodeServices) -> None:
    node = build(services, stub, modelName="llama3")

    assert node.body["options"] == {"temperature": 0.9}
    assert node.base_url == stub.url


def test_base_url_defaults_to_the_local_ollama(services: NodeServices) -> None:
    assert (
        chat_ollama.build("chatOllama_0", {"modelName": "llama3"}, services).base_url
        == "http://localhost:11434"
    )


@pytest.mark.parametrize("inputs", [{}, {"modelName": ""}, {"modelName": "m", "topK": "4.5"}])
def test_unusable_inputs_are_config_errors(services: NodeServices, inputs: dict[str, Any]) -> None:
    with pytest.raises(NodeConfigError):
        chat_ollama.build("chatOllama_0", inputs, services)


def test_spec_names_the_flowise_node() -> None:
    spec = chat_ollama.SPEC
    assert (spec.name, spec.label, spec.category) == ("chatOllama", "ChatOllama", "Chat Models")
    assert not set(spec.honoured) & set(spec.ignored)
