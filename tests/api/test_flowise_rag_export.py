"""A RAG graph in the shape Flowise 3.x exports: two Plain Text loaders (v2, with metadata) → In-Memory
Vector Store (v1, topK 2, its `retriever` output chosen) with OpenAI Embeddings (v4) → Conversational
Retrieval QA Chain (v3, returnSourceDocuments, its own rephrase and response prompts) with ChatOpenAI
(v8.3) and Buffer Memory (v2); both models point at the OpenAI stub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import create_flow, stream
from tests.support.openai_stub import StubServer, expected_text, serve_in_thread
from tests.support.sse import check_invariant

EXPORT = Path(__file__).resolve().parents[1] / "fixtures" / "flowise3_retrievalqa.json"


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with serve_in_thread() as running:
        yield running


def exported(base_url: str, model: str, embedding_model: str) -> tuple[str, dict[str, Any]]:
    text = EXPORT.read_text().replace("__BASE_URL__", base_url)
    text = text.replace("__MODEL__", model).replace("__EMBEDDING_MODEL__", embedding_model)
    graph = json.loads(text)
    return json.dumps(graph), graph


def node_inputs(graph: dict[str, Any], node_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(n for n in graph["nodes"] if n["id"] == node_id)["data"]["inputs"]
    return found


def loaded_documents(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """What the two Plain Text nodes hold, as the sources must show them."""
    return [
        {
            "pageContent": node_inputs(graph, loader)["text"],
            "metadata": json.loads(node_inputs(graph, loader)["metadata"]),
        }
        for loader in ("plainText_0", "plainText_1")
    ]


async def test_the_export_upserts_once_and_streams_sources_between_tokens_and_metadata(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    model, embedder = "stub?tokens=9&case=rag-export", "embed-rag-export"
    flow_data, graph = exported(stub.base_url, model, embedder)
    chatflow_id = await create_flow(client, flow_data, name="Tides (from Flowise)")
    assert (await client.get(f"/api/v1/chatflows-streaming/{chatflow_id}")).json() == {"isStreaming": True}
    documents = loaded_documents(graph)

    first = await client.post(f"/api/v1/vector/upsert/{chatflow_id}", json={})
    assert first.status_code == 200, first.text
    assert first.json()["numAdded"] == 2 and first.json()["addedDocs"] == documents
    assert stub.last(embedder).path == "/v1/embeddings"
    again = await client.post(f"/api/v1/vector/upsert/{chatflow_id}", json={})
    assert again.status_code == 200, again.text
    counts = {key: again.json()[key] for key in ("numAdded", "numUpdated", "numSkipped", "numDeleted")}
    assert counts == {"numAdded": 0, "numUpdated": 0, "numSkipped": 2, "numDeleted": 0}
    assert again.json()["addedDocs"] == []

    question = "When is the tidal range largest?"
    frames = await stream(client, chatflow_id, {"question": question, "chatId": "tides"})
    assert check_invariant(frames) == expected_text(9)
    events = [frame.event for frame in frames]
    assert events == ["start"] + ["token"] * 9 + ["sourceDocuments", "metadata", "end"]
    # This chain's `start` is the first token itself, which also comes as a token (Flowise's way).
    assert (frames[0].data, frames[1].data) == ("t0 ", "t0 ")
    sources = frames[-3].data
    assert sorted(sources, key=lambda d: d["metadata"]["source"]) == sorted(
        documents, key=lambda d: d["metadata"]["source"]
    )
    metadata = frames[-2].data
    assert (metadata["chatId"], metadata["question"]) == ("tides", "When is the tidal range largest?")
    assert metadata["memoryType"] == "Buffer Memory"

    # The question was embedded (with the chain's own model for that), then answered from the notes.
    assert stub.last(embedder).body["input"] in (question, [question])
    sent = stub.last(model).body
    system = sent["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("You answer questions about tides from the notes below")
    for document in documents:
        assert document["pageContent"] in system["content"]
    assert sent["messages"][-1] == {"role": "user", "content": question}

    history = (await client.get(f"/api/v1/chatmessage/{chatflow_id}", params={"chatId": "tides"})).json()
    assert [m["role"] for m in history] == ["userMessage", "apiMessage"]
    assert history[1]["content"] == expected_text(9) and history[1]["sourceDocuments"] == sources


async def test_a_follow_up_uses_the_exports_rephrase_prompt_and_remembers(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    model, embedder = "stub?tokens=5&case=rag-follow-up", "embed-rag-follow-up"
    flow_data, _ = exported(stub.base_url, model, embedder)
    chatflow_id = await create_flow(client, flow_data)
    assert (await client.post(f"/api/v1/vector/upsert/{chatflow_id}", json={})).status_code == 200
    await stream(client, chatflow_id, {"question": "What are neap tides?", "chatId": "f"})
    before = len(stub.records())

    frames = await stream(client, chatflow_id, {"question": "And how high is the water then?", "chatId": "f"})
    assert check_invariant(frames) == expected_text(5)  # the rephrasing's answer is not among the tokens
    calls = [r for r in stub.records()[before:] if r.model in (model, embedder)]
    assert [(r.path, r.model) for r in calls] == [
        ("/v1/chat/completions", model),  # rephrase
        ("/v1/embeddings", embedder),  # embed the standalone question
        ("/v1/chat/completions", model),  # answer
    ]
    rephrase = calls[0].body["messages"][-1]["content"]
    assert rephrase.startswith("Turn the last question into one that stands alone")
    assert "What are neap tides?" in rephrase and "And how high is the water then?" in rephrase
    # The standalone question is what the stub answered to the rephrase prompt, trimmed.
    standalone = expected_text(5).strip()
    assert calls[1].body["input"] in (standalone, [standalone])
    answer = calls[2].body["messages"]
    assert [m["role"] for m in answer] == ["system", "user", "assistant", "user"]
    assert answer[1:] == [
        {"role": "user", "content": "What are neap tides?"},
        {"role": "assistant", "content": expected_text(5)},
        {"role": "user", "content": "And how high is the water then?"},
    ]


async def test_the_json_answer_of_the_export_carries_the_sources(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    model, embedder = "stub?tokens=4&case=rag-json", "embed-rag-json"
    flow_data, _ = exported(stub.base_url, model, embedder)
    chatflow_id = await create_flow(client, flow_data)
    assert (await client.post(f"/api/v1/vector/upsert/{chatflow_id}", json={})).status_code == 200
    answer = await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "Neap tides?"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["text"] == expected_text(4)
    assert len(body["sourceDocuments"]) == 2
    assert {d["metadata"]["source"] for d in body["sourceDocuments"]} == {"spring.txt", "neap.txt"}


async def test_a_retrieval_qa_chain_on_the_stores_vector_store_output_answers_from_the_notes(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    """The same export turned into Flowise's Retrieval QA Chain (v2, no memory), with the vector
    store's other output anchor, `vectorStore`, chosen: both anchors give the chain its retriever."""
    model, embedder = "stub?tokens=3&case=rag-retrievalqa", "embed-rag-retrievalqa"
    _, graph = exported(stub.base_url, model, embedder)
    store = next(n for n in graph["nodes"] if n["id"] == "memoryVectorStore_0")
    store["data"]["outputs"] = {"output": "vectorStore"}
    chain = next(n for n in graph["nodes"] if n["id"] == "conversationalRetrievalQAChain_0")
    chain["data"].update(
        name="retrievalQAChain", label="Retrieval QA Chain", version=2, type="RetrievalQAChain"
    )
    chain["data"]["inputs"] = {
        "model": "{{chatOpenAI_0.data.instance}}",
        "vectorStoreRetriever": "{{memoryVectorStore_0.data.instance}}",
        "inputModeration": "",
    }
    graph["nodes"] = [n for n in graph["nodes"] if n["id"] != "bufferMemory_0"]
    graph["edges"] = [e for e in graph["edges"] if e["source"] != "bufferMemory_0"]
    for edge in graph["edges"]:
        if edge["source"] == "memoryVectorStore_0":
            edge["sourceHandle"] = "memoryVectorStore_0-output-vectorStore-Memory|VectorStore"
    chatflow_id = await create_flow(client, json.dumps(graph))
    assert (await client.post(f"/api/v1/vector/upsert/{chatflow_id}", json={})).status_code == 200

    frames = await stream(client, chatflow_id, {"question": "What happens at a neap tide?"})
    assert check_invariant(frames) == expected_text(3)
    # Without returnSourceDocuments the stream has no sources.
    assert [f.event for f in frames][-3:] == ["token", "metadata", "end"]
    prompt = json.dumps(stub.last(model).body["messages"])
    for document in loaded_documents(graph):
        assert document["pageContent"] in prompt
