"""ollamaEmbedding against the Ollama-compatible stub."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from streamwise.engine.retrieval import Embeddings
from streamwise.errors import ModelRefused, ModelTimeout, ModelUnavailable, NodeConfigError
from streamwise.nodes.embeddings import ollama_embeddings
from streamwise.nodes.embeddings.ollama_embeddings import OllamaEmbeddings
from streamwise.nodes.services import NodeServices
from tests.support.openai_stub import StubServer, stub_embedding

TEXTS = ["the cat sat on the mat", "dogs chase cats", "stock markets fell today"]
WHO = "Node ollamaEmbedding_0 (Ollama Embeddings)"


def build(services: NodeServices, stub: StubServer | None, **inputs: Any) -> OllamaEmbeddings:
    node_inputs: dict[str, Any] = {"baseUrl": stub.url} if stub else {}
    return ollama_embeddings.build("ollamaEmbedding_0", {**node_inputs, **inputs}, services)


def paths_for(stub: StubServer, model: str) -> list[str]:
    return [record.path for record in stub.records() if record.model == model]


async def test_vectors_come_back_in_order_from_api_embed(stub: StubServer, services: NodeServices) -> None:
    node = build(services, stub, modelName="stub?case=oll-order")

    vectors = await node.embed_documents(TEXTS)

    assert isinstance(node, Embeddings) and node.key == "ollama:stub?case=oll-order"
    assert vectors == [stub_embedding(text) for text in TEXTS]
    record = stub.last("stub?case=oll-order")
    assert record.path == "/api/embed" and record.body["input"] == TEXTS
    assert record.body["options"] == {"use_mmap": True}


async def test_a_query_is_one_text(stub: StubServer, services: NodeServices) -> None:
    node = build(services, stub, modelName="stub?case=oll-query")

    assert await node.embed_query("where is the cat") == stub_embedding("where is the cat")


async def test_flowise_options_are_passed_to_ollama(stub: StubServer, services: NodeServices) -> None:
    node = build(services, stub, modelName="stub?case=oll-options", numThread="4", numGpu=0, useMMap=False)

    await node.embed_query("hi")

    assert stub.last("stub?case=oll-options").body["options"] == {
        "num_thread": 4,
        "num_gpu": 0,
        "use_mmap": False,
    }


async def test_large_inputs_go_out_in_batches_and_come_back_in_order(
    stub: StubServer, services: NodeServices
) -> None:
    model = "stub?case=oll-ollama-batches"
    node = build(services, stub, modelName=model)
    node.batch_size = 4
    texts = [f"passage number {i} about topic {i % 3}" for i in range(10)]

    vectors = await node.embed_documents(texts)

    assert vectors == [stub_embedding(text) for text in texts]
    sent = sorted(
        (r.body["input"] for r in stub.records() if r.model == model), key=lambda b: texts.index(b[0])
    )
    assert sent == [texts[0:4], texts[4:8], texts[8:10]]


async def test_an_old_server_without_api_embed_is_asked_one_text_at_a_time(
    stub: StubServer, services: NodeServices
) -> None:
    model = "stub?legacy=1&case=oll-old"
    node = build(services, stub, modelName=model)

    first = await node.embed_documents(TEXTS)
    second = await node.embed_query("hello there")

    assert first == [stub_embedding(text) for text in TEXTS]
    assert second == stub_embedding("hello there")
    # /api/embed is tried once; after its 404 the old endpoint is used, and remembered.
    assert paths_for(stub, model) == ["/api/embed"] + ["/api/embeddings"] * 4
    prompts = sorted(
        r.body["prompt"] for r in stub.records() if r.path == "/api/embeddings" and r.model == model
    )
    assert prompts == sorted([*TEXTS, "hello there"])


async def test_a_404_on_both_endpoints_is_reported_and_not_remembered(
    stub: StubServer, services: NodeServices
) -> None:
    model = "stub?status=404&message=model not found, try pulling it first"
    node = build(services, stub, modelName=model)

    with pytest.raises(ModelRefused) as caught:
        await node.embed_query("hi")

    assert str(caught.value) == f"{WHO}: the model server does not know this model or endpoint (HTTP 404)"
    assert "pulling" in (caught.value.detail or "")
    assert not node._legacy()


async def test_an_error_status_names_the_node_never_the_server(
    stub: StubServer, services: NodeServices
) -> None:
    node = build(services, stub, modelName="stub?status=500&message=out of memory")

    with pytest.raises(ModelUnavailable) as caught:
        await node.embed_documents(TEXTS)

    assert str(caught.value) == f"{WHO}: the model server failed (HTTP 500)"
    assert stub.url not in str(caught.value)
    assert caught.value.detail is not None and stub.url in caught.value.detail
    assert "out of memory" in caught.value.detail


async def test_the_server_deadline_applies(stub: StubServer, services: NodeServices) -> None:
    services.model_timeout_seconds = 0.3
    node = build(services, stub, modelName="stub?hang=1&case=oll-timeout")

    with pytest.raises(ModelTimeout) as caught:
        await node.embed_documents(TEXTS)

    assert str(caught.value) == f"{WHO}: the model server did not answer within 0.3 s"
    await stub.wait_for(lambda r: r.model == "stub?hang=1&case=oll-timeout" and r.disconnected)


async def test_a_server_that_is_not_there_is_unreachable(services: NodeServices) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    node = build(services, None, baseUrl=f"http://127.0.0.1:{port}")

    with pytest.raises(ModelUnavailable) as caught:
        await node.embed_query("hi")

    assert str(caught.value) == f"{WHO}: could not reach the model server"
    assert str(port) not in str(caught.value)


async def test_an_answer_with_too_few_vectors_is_malformed(stub: StubServer, services: NodeServices) -> None:
    node = build(services, stub, modelName="stub?vectors=2")

    with pytest.raises(ModelUnavailable) as caught:
        await node.embed_documents(TEXTS)

    assert str(caught.value) == f"{WHO}: the model server sent something that is not an answer"


async def test_building_touches_nothing(stub: StubServer, services: NodeServices) -> None:
    before = len(stub.records())

    node = build(services, stub)

    assert services.cache == {} and len(stub.records()) == before
    assert node.model == "mxbai-embed-large" and node.deadline == services.model_timeout_seconds
    assert build(services, None).base_url == "http://localhost:11434"


def test_unusable_inputs_name_the_node_and_input(services: NodeServices) -> None:
    with pytest.raises(NodeConfigError) as caught:
        build(services, None, numThread="lots")

    assert "ollamaEmbedding_0" in str(caught.value) and "numThread" in str(caught.value)
