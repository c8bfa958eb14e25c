from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from streamwise.engine.ports import ChatModel, ChatTurn
from streamwise.errors import ModelTimeout, NodeConfigError
from streamwise.nodes.models import chat_openai
from streamwise.nodes.models.chat_openai import ChatOpenAI
from streamwise.nodes.models.errors import ModelError
from streamwise.nodes.models.sse_lines import SSEBlockSplitter, data_field
from streamwise.nodes.services import NodeServices
from tests.support.openai_stub import StubServer, expected_text

QUESTION = [ChatTurn("system", "be brief"), ChatTurn("user", "hi")]


def build(services: NodeServices, stub: StubServer | None, **inputs: Any) -> ChatOpenAI:
    node_inputs: dict[str, Any] = {"basepath": stub.base_url} if stub else {}
    return chat_openai.build("chatOpenAI_0", {**node_inputs, **inputs}, services)


async def collect(model: ChatModel, messages: list[ChatTurn] = QUESTION) -> list[str]:
    return [chunk async for batch in model.stream(messages) for chunk in batch]


async def test_tokens_arrive_in_order_and_join_to_the_answer(
    stub: StubServer, services: NodeServices
) -> None:
    node = build(services, stub, modelName="stub?tokens=50&case=order")

    chunks = await collect(node)

    assert isinstance(node, ChatModel) and node.can_stream
    # The first delta as it came (OpenAI's carries only the role), which becomes the run's `start`.
    assert chunks == ["", *(f"t{i} " for i in range(50))]
    record = stub.last("stub?tokens=50&case=order")
    assert record.stream and record.completed and not record.disconnected
    assert record.body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]


async def test_non_streaming_yields_the_whole_answer_once(stub: StubServer, services: NodeServices) -> None:
    node = build(services, stub, modelName="stub?tokens=30&case=whole", streaming=False)

    chunks = await collect(node)

    assert not node.can_stream
    assert chunks == [expected_text(30)]
    assert stub.last("stub?tokens=30&case=whole").stream is False


async def test_error_status_before_the_first_token_is_a_model_error(
    stub: StubServer, services: NodeServices
) -> None:
    node = build(services, stub, modelName="stub?status=500&message=overloaded")

    with pytest.raises(ModelError) as caught:
        await collect(node)

    assert caught.value.status == 500
    # The client is told which node failed and how, never where the server is or what it said.
    assert str(caught.value) == "Node chatOpenAI_0 (ChatOpenAI): the model server failed (HTTP 500)"
    assert caught.value.detail is not None
    assert stub.base_url in caught.value.detail and "overloaded" in caught.value.detail


async def test_api_keys_echoed_in_errors_are_masked(stub: StubServer, services: NodeServices) -> None:
    services.env = {"OPENAI_API_KEY": "sk-live-secret-123456"}
    node = build(
        services, stub, modelName="stub?status=401&message=Incorrect API key provided: sk-live-secret-123456"
    )

    with pytest.raises(ModelError) as caught:
        await collect(node)

    assert "secret" not in str(caught.value) and "secret" not in (caught.value.detail or "")
    assert "401" in str(caught.value) and "credentials" in str(caught.value)


@pytest.mark.parametrize("failure", ["drop", "error"])
async def test_a_failure_after_k_tokens_yields_them_then_raises(
    stub: StubServer, services: NodeServices, failure: str
) -> None:
    node = build(services, stub, modelName=f"stub?tokens=20&{failure}=5&message=went wrong")
    chunks: list[str] = []

    with pytest.raises(ModelError) as caught:
        async for chunk in node.stream(QUESTION):
            chunks.extend(text for text in chunk if text)

    assert chunks == [f"t{i} " for i in range(5)]
    expected = "reported an error mid-answer" if failure == "error" else "broke off the answer"
    assert expected in str(caught.value) and "went wrong" not in str(caught.value)


async def test_cancelling_the_consumer_closes_the_upstream_response(
    stub: StubServer, services: NodeServices
) -> None:
    model = "stub?tokens=1000&delay=0.01&case=cancel"
    node = build(services, stub, modelName=model)
    received: list[str] = []
    three_received = asyncio.Event()

    async def consume() -> None:
        async for chunk in node.stream(QUESTION):
            received.extend(text for text in chunk if text)
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
    model = "stub?tokens=1000&delay=0.01&case=aclose"
    stream = build(services, stub, modelName=model).stream(QUESTION)

    first = [chunk for _ in range(3) for chunk in await anext(stream)]
    await stream.aclose()

    record = await stub.wait_for(lambda r: r.model == model and r.disconnected)
    assert first[:3] == ["", "t0 ", "t1 "]
    assert record.tokens_sent < 3 + 20


async def test_a_silent_server_times_out_with_the_node_timeout(
    stub: StubServer, services: NodeServices
) -> None:
    node = build(services, stub, modelName="stub?tokens=3&delay=0.5&case=timeout", timeout=100)

    with pytest.raises(ModelTimeout, match=r"chatOpenAI_0.*silent for more than 0.1 s"):
        await collect(node)


async def test_an_unreachable_server_is_a_model_error(services: NodeServices) -> None:
    node = build(services, None, basepath="http://127.0.0.1:9/v1")

    with pytest.raises(ModelError, match=r"^Node chatOpenAI_0 \(ChatOpenAI\): could not reach") as caught:
        await collect(node)
    assert "127.0.0.1:9" not in str(caught.value) and "127.0.0.1:9" in (caught.value.detail or "")


async def test_one_client_serves_every_build_with_the_same_settings(
    stub: StubServer, services: NodeServices
) -> None:
    first = build(services, stub, modelName="a")
    second = build(services, stub, modelName="b", temperature=0.1)
    other_timeout = build(services, stub, modelName="a", timeout=5000)

    assert not services.cache  # building touches nothing
    clients = await asyncio.gather(*(node.client() for node in (first, second, first, second)))
    assert all(client is clients[0] for client in clients)  # built once, even when asked at once
    assert await other_timeout.client() is not clients[0]


@pytest.mark.parametrize(
    ("inputs", "openai_base_url", "env", "expected"),
    [
        (
            {"basepath": "http://127.0.0.1:1/v1"},
            "http://127.0.0.1:2/v1",
            {"OPENAI_BASE_URL": "http://127.0.0.1:3/v1"},
            "http://127.0.0.1:1/v1/",
        ),
        ({"basePath": "http://127.0.0.1:1/v1"}, None, {}, "http://127.0.0.1:1/v1/"),
        (
            {"basepath": ""},
            "http://127.0.0.1:2/v1",
            {"OPENAI_BASE_URL": "http://127.0.0.1:3/v1"},
            "http://127.0.0.1:2/v1/",
        ),
        ({}, None, {"OPENAI_BASE_URL": "http://127.0.0.1:3/v1"}, "http://127.0.0.1:3/v1/"),
        ({}, None, {}, "https://api.openai.com/v1/"),
    ],
)
async def test_base_url_precedence(
    services: NodeServices,
    inputs: Mapping[str, Any],
    openai_base_url: str | None,
    env: dict[str, str],
    expected: str,
) -> None:
    services.openai_base_url = openai_base_url
    services.env = env

    node = chat_openai.build("chatOpenAI_0", inputs, services)

    assert str((await node.client()).base_url) == expected


async def test_the_credential_id_is_ignored_and_the_key_comes_from_the_environment(
    stub: StubServer, services: NodeServices
) -> None:
    await collect(
        build(services, stub, modelName="stub?tokens=1&case=nokey", credential="3f0c-credential-id")
    )
    services.env = {"OPENAI_API_KEY": "sk-from-env"}
    await collect(
        build(services, stub, modelName="stub?tokens=1&case=envkey", credential="3f0c-credential-id")
    )

    assert stub.last("stub?tokens=1&case=nokey").headers["authorization"] == "Bearer sk-no-key-required"
    assert stub.last("stub?tokens=1&case=envkey").headers["authorization"] == "Bearer sk-from-env"


async def test_flowise_inputs_reach_the_request_body(stub: StubServer, services: NodeServices) -> None:
    model = "stub?tokens=1&case=inputs"
    node = build(
        services,
        stub,
        modelName=model,
        temperature="0.2",
        maxTokens="64",
        topP=0.5,
        frequencyPenalty="0.1",
        presencePenalty="",
        stopSequence="END, STOP ,",
        baseOptions='{"X-Team": "search", "X-Retry": 1}',
        imageResolution="low",
        strictToolCalling=True,
    )

    await collect(node)

    record = stub.last(model)
    body = {k: v for k, v in record.body.items() if k not in ("model", "messages", "stream")}
    assert body == {
        "temperature": 0.2,
        "max_completion_tokens": 64,
        "top_p": 0.5,
        "frequency_penalty": 0.1,
        "stop": ["END", "STOP"],
    }
    assert record.headers["x-team"] == "search" and record.headers["x-retry"] == "1"


async def test_base_options_may_be_an_object(stub: StubServer, services: NodeServices) -> None:
    node = build(
        services, stub, modelName="stub?case=header-control", baseOptions={"X-Stub-Control": "tokens=2"}
    )

    assert await collect(node) == ["", "t0 ", "t1 "]


async def test_temperature_defaults_to_flowise_default(stub: StubServer, services: NodeServices) -> None:
    await collect(build(services, stub, modelName="stub?tokens=1&case=default-temperature"))

    assert stub.last("stub?tokens=1&case=default-temperature").body["temperature"] == 0.9


async def test_reasoning_models_get_effort_instead_of_temperature_and_stop(
    stub: StubServer, services: NodeServices
) -> None:
    node = build(
        services, stub, modelName="gpt-5-mini", temperature=0.3, stopSequence="x", reasoningEffort="low"
    )

    assert node.params == {"reasoning_effort": "low"}


@pytest.mark.parametrize(
    "inputs", [{"baseOptions": "{not json"}, {"baseOptions": "[1]"}, {"timeout": "soon"}]
)
def test_unusable_inputs_are_config_errors(services: NodeServices, inputs: dict[str, Any]) -> None:
    with pytest.raises(NodeConfigError):
        chat_openai.build("chatOpenAI_0", inputs, services)


def test_spec_names_the_flowise_node() -> None:
    spec = chat_openai.SPEC
    assert (spec.name, spec.label, spec.category) == ("chatOpenAI", "ChatOpenAI", "Chat Models")
    assert "credential" in spec.ignored and "basepath" in spec.honoured
    assert not set(spec.honoured) & set(spec.ignored)


async def test_the_stub_speaks_openai_as_the_sdk_reads_it(stub: StubServer, services: NodeServices) -> None:
    client = await build(services, stub).client()

    chunks = await client.chat.completions.create(
        model="stub?tokens=5", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    texts = [chunk.choices[0].delta.content async for chunk in chunks if chunk.choices]

    assert "".join(t or "" for t in texts) == expected_text(5)


@pytest.mark.parametrize(
    ("reads", "payloads"),
    [
        ([b'data: {"a":1}\n\ndata: [DONE]\n\n'], ['{"a":1}', "[DONE]"]),
        ([b"da", b"ta: x\n", b"\n"], ["x"]),
        ([b"data: x\r", b"\n\r\ndata: y\r\n\r\n"], ["x", "y"]),
        ([b": keep-alive\n\nevent: ping\n\ndata:x\n\n"], [None, None, "x"]),
        ([b"event: message\ndata: line 1\ndata: line 2\nid: 7\n\n"], ["line 1\nline 2"]),
        ([b"data: unfinished"], []),
        (['data: "é"\n\n'.encode()[:8], 'data: "é"\n\n'.encode()[8:]], ['"é"']),  # split in a character
    ],
)
def test_sse_splitter_returns_each_complete_event_and_its_data(
    reads: list[bytes], payloads: list[str | None]
) -> None:
    splitter = SSEBlockSplitter()

    assert [data_field(block) for chunk in reads for block in splitter.feed(chunk)] == payloads


@pytest.mark.parametrize(
    ("payload", "content"),
    [
        (b'{"choices":[{"index":0,"delta":{"content":"plain"},"finish_reason":null}]}', "plain"),
        (b'{"choices":[{"delta":{"role":"assistant","content":""}}]}', ""),
        (
            b'{"choices":[{"delta":{"content":"say \\"content\\":\\"x\\" \\n \\u00e9 \\ud83d\\ude00"}}]}',
            'say "content":"x" \n é 😀',
        ),
        (b'{"choices":[{"delta":{"reasoning_content":"think","content":"answer"}}]}', "answer"),
        (b'{"choices":[{"delta":{"reasoning_content":"only thinking"}}]}', None),
        (b'{"choices":[{"delta":{"content":null}}],"usage":null}', None),
        (b'{"choices":[],"usage":{"prompt_tokens":3}}', None),
        ('{"choices":[{"delta":{"content":"日本語"}}]}'.encode(), "日本語"),
    ],
)
def test_content_is_read_exactly_from_stream_events(
    services: NodeServices, payload: bytes, content: str | None
) -> None:
    node = build(services, None, basepath="http://127.0.0.1:9/v1")
    assert node._content("data: " + payload.decode()) == content


def test_an_error_event_mid_stream_is_a_model_error(services: NodeServices) -> None:
    node = build(services, None, basepath="http://127.0.0.1:9/v1")
    with pytest.raises(ModelError, match="reported an error mid-answer") as caught:
        node._content('data: {"error":{"message":"boom","type":"server_error"}}')
    assert "boom" in (caught.value.detail or "") and "boom" not in str(caught.value)
    with pytest.raises(ModelError, match="not an answer"):
        node._content('data: {"choices":[{"delta":{"content":"unterminated}}]')
