"""openAIEmbeddings against the OpenAI-compatible stub."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from streamwise.engine.retrieval import Embeddings
from streamwise.errors import ModelRefused, ModelTimeout, ModelUnavailable, NodeConfigError
from streamwise.nodes.embeddings import openai_embeddings
from streamwise.nodes.embeddings.openai_embeddings import OpenAIEmbeddings
from streamwise.nodes.models.errors import ModelError
from streamwise.nodes.services import NodeServices
from tests.support.openai_stub import StubServer, stub_embedding

TEXTS = ["the cat sat on the mat", "dogs chase cats", "stock markets fell today"]
WHO = "Node openAIEmbeddings_0 (OpenAI Embedding)"


def build(services: NodeServices, stub: StubServer | None, **inputs: Any) -> OpenAIEmbeddings:
    node_inputs: dict[str, Any] = {"basepath": stub.base_url} if stub else {}
    return openai_embeddings.build("openAIEmbeddings_0", {**node_inputs, **inputs}, services)


def requests_for(stub: StubServer, model: str) -> list[list[str]]:
    return [r.body["input"] for r in stub.records() if r.model == model and r.path == "/v1/embeddings"]


async def test_vectors_come_back_in_the_order_of_the_texts(stub: StubServer, services: NodeServices) -> None:
    node = build(services, stub, modelName="stub?case=oai-order")

    vectors = await node.embed_documents(TEXTS)

    assert isinstance(node, Embeddings)
    assert vectors == [stub_embedding(text) for text in TEXTS]
    record = stub.last("stub?case=oai-order")
    assert record.path == "/v1/embeddings" and record.body["input"] == TEXTS
    assert "dimensions" not in record.body and "encoding_format" not in record.body


async def test_items_listed_out_of_order_are_put_back_by_their_index(
    stub: StubServer, services: NodeServices
) -> None:
    node = build(services, stub, modelName="stub?reverse=1")

    assert await node.embed_documents(TEXTS) == [stub_embedding(text) for text in TEXTS]


async def test_a_query_is_one_text(stub: StubServer, services: NodeServices) -> None:
    node = build(services, stub, modelName="stub?case=oai-query")

    assert await node.embed_query("where is the cat") == stub_embedding("where is the cat")
    assert stub.last("stub?case=oai-query").body["input"] == ["where is the cat"]


async def test_large_inputs_go_out_in_batches_and_come_back_in_order(
    stub: StubServer, services: NodeServices
) -> None:
    model = "stub?case=oai-openai-batches"
    node = build(services, stub, modelName=model, batchSize="4")
    texts = [f"passage number {i} about topic {i % 3}" for i in range(10)]

    vectors = await node.embed_documents(texts)

    assert vectors == [stub_embedding(text) for text in texts]
    sent = sorted(requests_for(stub, model), key=lambda batch: texts.index(batch[0]))
    assert sent == [texts[0:4], texts[4:8], texts[8:10]]


async def test_the_default_batch_is_512_texts_and_big_answers_are_parsed(
    stub: StubServer, services: NodeServices
) -> None:
    model = "stub?case=oai-default-batch&dims=256"
    node = build(services, stub, modelName=model)
    texts = [f"chunk {i}" for i in range(1100)]

    vectors = await node.embed_documents(texts)

    assert [len(batch) for batch in sorted(requests_for(stub, model), key=len, reverse=True)] == [
        512,
        512,
        76,
    ]
    assert vectors[0] == stub_embedding("chunk 0", 256) and vectors[-1] == stub_embedding("chunk 1099", 256)
    assert len(vectors) == 1100


async def test_no_texts_make_no_request(stub: StubServer, services: NodeServices) -> None:
    node = build(services, stub, modelName="stub?case=oai-empty")

    assert await node.embed_documents([]) == []
    assert requests_for(stub, "stub?case=oai-empty") == []


async def test_dimensions_are_sent_and_name_the_key(stub: StubServer, services: NodeServices) -> None:
    node = build(services, stub, modelName="stub?case=oai-dims", dimensions=16)

    vectors = await node.embed_documents(TEXTS)

    assert stub.last("stub?case=oai-dims").body["dimensions"] == 16
    assert vectors == [stub_embedding(text, 16) for text in TEXTS]
    assert node.key == "openai:stub?case=oai-dims:16"
    assert build(services, stub).key == "openai:text-embedding-ada-002"


async def test_new_lines_are_stripped_unless_the_node_says_not_to(
    stub: StubServer, services: NodeServices
) -> None:
    await build(services, stub, modelName="stub?case=oai-strip").embed_documents(["one\ntwo"])
    await build(services, stub, modelName="stub?case=oai-keep", stripNewLines=False).embed_documents(
        ["one\ntwo"]
    )

    assert stub.last("stub?case=oai-strip").body["input"] == ["one two"]
    assert stub.last("stub?case=oai-keep").body["input"] == ["one\ntwo"]


async def test_base64_vectors_are_decoded(stub: StubServer, services: NodeServices) -> None:
    node = build(services, stub, modelName="stub?case=oai-b64", encodingFormat="base64")

    vectors = await node.embed_documents(TEXTS)

    assert stub.last("stub?case=oai-b64").body["encoding_format"] == "base64"
    for vector, text in zip(vectors, TEXTS, strict=True):
        assert vector == pytest.approx(stub_embedding(text), abs=1e-6)


async def test_the_key_comes_from_the_environment_and_base_options_add_headers(
    stub: StubServer, services: NodeServices
) -> None:
    services.env = {"OPENAI_API_KEY": "sk-test-embeddings-123456"}
    node = build(services, stub, modelName="stub?case=oai-auth", baseOptions='{"X-Team": "search"}')

    await node.embed_query("hello")

    headers = stub.last("stub?case=oai-auth").headers
    assert headers["authorization"] == "Bearer sk-test-embeddings-123456"
    assert headers["x-team"] == "search"


async def test_an_error_status_names_the_node_never_the_server(
    stub: StubServer, services: NodeServices
) -> None:
    node = build(services, stub, modelName="stub?status=500&message=internal embeddings trouble")

    with pytest.raises(ModelUnavailable) as caught:
        await node.embed_documents(TEXTS)

    assert str(caught.value) == f"{WHO}: the model server failed (HTTP 500)"
    assert caught.value.detail is not None
    assert stub.base_url in caught.value.detail and "internal embeddings trouble" in caught.value.detail


async def test_a_refused_key_is_masked(stub: StubServer, services: NodeServices) -> None:
    services.env = {"OPENAI_API_KEY": "sk-live-secret-123456"}
    node = build(services, stub, modelName="stub?status=401&message=Incorrect API key sk-live-secret-123456")

    with pytest.raises(ModelRefused) as caught:
        await node.embed_query("hi")

    assert str(caught.value) == f"{WHO}: the model server refused the credentials (HTTP 401)"
    assert "secret" not in (caught.value.detail or "")


async def test_a_failing_batch_fails_the_whole_job(stub: StubServer, services: NodeServices) -> None:
    node = build(services, stub, modelName="stub?status=429&retry=7", batchSize=1)

    with pytest.raises(ModelError) as caught:
        await node.embed_documents(TEXTS)

    assert (
        str(caught.value) == f"{WHO}: the model server is rate limiting requests (HTTP 429); try again in 7 s"
    )


async def test_the_node_timeout_wins_over_the_server_deadline(
    stub: StubServer, services: NodeServices
) -> None:
    services.model_timeout_seconds = 60
    node = build(services, stub, modelName="stub?hang=1&case=oai-node-timeout", timeout=200)

    with pytest.raises(ModelTimeout) as caught:
        await node.embed_documents(TEXTS)

    assert str(caught.value) == f"{WHO}: the model server did not answer within 0.2 s"
    record = await stub.wait_for(lambda r: r.model == "stub?hang=1&case=oai-node-timeout" and r.disconnected)
    assert not record.completed


async def test_without_a_node_timeout_the_server_deadline_applies(
    stub: StubServer, services: NodeServices
) -> None:
    services.model_timeout_seconds = 0.3
    node = build(services, stub, modelName="stub?hang=1&case=oai-server-timeout")

    with pytest.raises(ModelTimeout) as caught:
        await node.embed_query("hi")

    assert str(caught.value) == f"{WHO}: the model server did not answer within 0.3 s"


async def test_a_server_that_is_not_there_is_unreachable(services: NodeServices) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    node = build(services, None, basepath=f"http://127.0.0.1:{port}/v1")

    with pytest.raises(ModelUnavailable) as caught:
        await node.embed_query("hi")

    assert str(caught.value) == f"{WHO}: could not reach the model server"
    assert str(port) in (caught.value.detail or "")


async def test_an_answer_with_too_few_vectors_is_malformed(stub: StubServer, services: NodeServices) -> None:
    node = build(services, stub, modelName="stub?vectors=1")

    with pytest.raises(ModelUnavailable) as caught:
        await node.embed_documents(TEXTS)

    assert str(caught.value) == f"{WHO}: the model server sent something that is not an answer"
    assert "1 vectors for 3 inputs" in (caught.value.detail or "")


async def test_building_touches_nothing(stub: StubServer, services: NodeServices) -> None:
    before = len(stub.records())

    node = build(services, stub, modelName="stub?case=oai-build", timeout=1000, dimensions=8)

    assert services.cache == {} and len(stub.records()) == before
    assert node.deadline == 1.0 and node.batch_size == 512


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        ({"batchSize": 0}, "batchSize"),
        ({"dimensions": "many"}, "dimensions"),
        ({"timeout": -5}, "timeout"),
        ({"encodingFormat": "hex"}, "encodingFormat"),
        ({"baseOptions": "{not json"}, "BaseOptions"),
    ],
)
def test_unusable_inputs_name_the_node_and_input(
    services: NodeServices, inputs: dict[str, Any], named: str
) -> None:
    with pytest.raises(NodeConfigError) as caught:
        build(services, None, **inputs)

    assert "openAIEmbeddings_0" in str(caught.value) and named in str(caught.value)
