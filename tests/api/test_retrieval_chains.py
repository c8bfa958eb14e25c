"""Retrieval chains over the routes: sources after the tokens, in the JSON answer and in history; a
follow-up question rephrased without being streamed; failures and aborts during retrieval."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.api.helpers import create_flow, stream
from tests.support.flows import fake_model, node, rag_flow
from tests.support.sse import check_invariant, parse_frames

TEXTS = ["The capital of France is Paris.", "Bananas are yellow.", "The capital of Italy is Rome."]


async def ready(client: httpx.AsyncClient, flow: str) -> str:
    chatflow_id = await create_flow(client, flow)
    assert (await client.post(f"/api/v1/vector/upsert/{chatflow_id}", json={})).status_code == 200
    return chatflow_id


async def test_sources_stream_after_the_tokens_and_before_metadata(client: httpx.AsyncClient) -> None:
    chatflow_id = await ready(client, rag_flow(fake_model(tokens=["It", " is", " Paris."]), texts=TEXTS))
    frames = await stream(client, chatflow_id, {"question": "What is the capital of France?", "chatId": "c"})
    assert [f.event for f in frames] == [
        "start",
        "token",
        "token",
        "token",
        "sourceDocuments",
        "metadata",
        "end",
    ]
    assert check_invariant(frames) == "It is Paris."
    sources = frames[4].data
    assert len(sources) == 2 and sources[0] == {"pageContent": TEXTS[0], "metadata": {"source": "text-0"}}
    history = (await client.get(f"/api/v1/chatmessage/{chatflow_id}", params={"chatId": "c"})).json()
    assert history[1]["role"] == "apiMessage" and history[1]["sourceDocuments"] == sources


async def test_the_json_answer_carries_the_sources(client: httpx.AsyncClient) -> None:
    chatflow_id = await ready(client, rag_flow(fake_model(tokens=["Rome."]), texts=TEXTS))
    answer = (
        await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "capital of Italy"})
    ).json()
    assert answer["text"] == "Rome." and answer["sourceDocuments"][0]["pageContent"] == TEXTS[2]


async def test_without_return_source_documents_there_are_none(client: httpx.AsyncClient) -> None:
    flow = rag_flow(fake_model(tokens=["ok"]), texts=TEXTS, return_sources=False)
    chatflow_id = await ready(client, flow)
    frames = await stream(client, chatflow_id, {"question": "France?"})
    assert "sourceDocuments" not in [f.event for f in frames]
    answer = (await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "France?"})).json()
    assert "sourceDocuments" not in answer


async def test_the_retrieved_passages_reach_the_model(client: httpx.AsyncClient) -> None:
    for chain in ("conversationalRetrievalQAChain", "retrievalQAChain"):
        chatflow_id = await ready(client, rag_flow(fake_model(echo=True), texts=TEXTS, chain=chain, top_k=1))
        text = check_invariant(await stream(client, chatflow_id, {"question": "Why are bananas yellow?"}))
        assert "Bananas are yellow." in text and "Paris" not in text, chain
        assert "user: Why are bananas yellow?" in text, chain


async def test_a_follow_up_is_rephrased_with_the_history_and_the_rephrasing_is_not_streamed(
    client: httpx.AsyncClient,
) -> None:
    # Passages without common words, so the bag-of-words embeddings tell them apart.
    texts = ["Paris: French capital.", "Bananas: yellow fruit.", "Rome: Italian capital."]
    flow = rag_flow(fake_model(echo=True), texts=texts, memory="bufferMemory", top_k=1)
    chatflow_id = await ready(client, flow)
    await stream(client, chatflow_id, {"question": "Tell me about bananas.", "chatId": "talk"})
    frames = await stream(client, chatflow_id, {"question": "What colour are they?", "chatId": "talk"})
    text = check_invariant(frames)
    assert "Standalone Question" not in text  # the rephrasing call's answer never became tokens
    # The rephrased question (the echo of the rephrase prompt) held the history, so it found bananas.
    assert frames[-3].event == "sourceDocuments" and frames[-3].data[0]["pageContent"] == texts[1]
    assert "user: What colour are they?" in text and "assistant: " in text


async def test_a_failure_during_retrieval_is_error_then_end_and_is_stored(client: httpx.AsyncClient) -> None:
    embeddings = node("fakeEmbeddings_0", "fakeEmbeddings", "Embeddings", {"failAt": 1})
    chatflow_id = await create_flow(
        client, rag_flow(fake_model(tokens=["x"]), texts=TEXTS, embeddings=embeddings)
    )
    frames = await stream(client, chatflow_id, {"question": "q", "chatId": "fails"})
    assert [f.event for f in frames] == ["error", "end"] and "fakeEmbeddings_0" in frames[0].data
    history = (await client.get(f"/api/v1/chatmessage/{chatflow_id}", params={"chatId": "fails"})).json()
    assert [m["status"] for m in history] == ["complete", "error"]
    answer = await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q"})
    assert answer.status_code == 502


async def test_an_abort_during_retrieval_is_abort_then_end(client: httpx.AsyncClient) -> None:
    embeddings = node("fakeEmbeddings_0", "fakeEmbeddings", "Embeddings", {"delayMs": 3000})
    chatflow_id = await create_flow(
        client, rag_flow(fake_model(tokens=["x"]), texts=[], embeddings=embeddings)
    )
    body = {"question": "q", "streaming": True, "chatId": "slow"}
    pending = asyncio.ensure_future(client.post(f"/api/v1/prediction/{chatflow_id}", json=body))
    await asyncio.sleep(0.3)
    aborted = await client.put(f"/api/v1/chatmessage/abort/{chatflow_id}/slow")
    assert aborted.json()["aborted"] == 1
    async with asyncio.timeout(10):
        frames = parse_frames((await pending).content)
    assert [f.event for f in frames] == ["abort", "end"]


async def test_a_retrieval_chain_without_a_retriever_is_refused_at_save(client: httpx.AsyncClient) -> None:
    flow = json.loads(rag_flow(fake_model(), texts=[]))
    chain = next(n for n in flow["nodes"] if n["id"] == "chain_0")
    del chain["data"]["inputs"]["vectorStoreRetriever"]
    flow["edges"] = [
        e for e in flow["edges"] if e["target"] != "chain_0" or "Retriever" not in e["targetHandle"]
    ]
    answer = await client.post("/api/v1/chatflows", json={"name": "x", "flowData": json.dumps(flow)})
    assert answer.status_code == 400 and "vectorStoreRetriever" in answer.json()["message"]
