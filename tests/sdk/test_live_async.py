"""`streamwise.client.AsyncClient` against a live server: the same calls as the sync tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from streamwise.client import AsyncClient, errors, events
from tests.support.flows import fake_flow, fake_model, overrides_enabled, rag_flow
from tests.support.server import LiveServer

TEXTS = ["The capital of France is Paris.", "Bananas are yellow."]


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.base_url, timeout=30) as sdk:
        yield sdk


async def test_predict_and_stream(client: AsyncClient, server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(memory="bufferMemory", tokens=["Hel", "lo"]))
    answer = await client.predict(chatflow_id, "Hi", chat_id="a1")
    assert (answer.text, answer.chat_id, answer.memory_type) == ("Hello", "a1", "Buffer Memory")
    async with client.stream(chatflow_id, "Again", chat_id="a1") as stream:
        seen = [event async for event in stream]
    assert [e.name for e in seen] == ["start", "token", "token", "metadata", "end"]
    assert stream.text == "Hello" and stream.metadata is not None and stream.metadata.chat_id == "a1"
    history = await client.history(chatflow_id, chat_id="a1")
    assert [m.content for m in history] == ["Hi", "Hello", "Again", "Hello"]
    assert history[-1].id == stream.metadata.chat_message_id


async def test_awaiting_the_stream_opens_it(client: AsyncClient, server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["x", "y"]))
    stream = await client.stream(chatflow_id, "q")
    try:
        assert [text async for text in stream.iter_text()] == ["x", "y"]
    finally:
        await stream.close()
    result = await (await client.stream(chatflow_id, "q")).result()
    assert result.text == "xy"


async def test_abort_mid_stream(client: AsyncClient, server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokenCount=2000, delayMs=5))
    seen: list[events.Event] = []
    aborted = None
    async with client.stream(chatflow_id, "long", chat_id="a-abort") as stream:
        async for event in stream:
            seen.append(event)
            if aborted is None and len(seen) == 4:
                aborted = await client.abort(chatflow_id, "a-abort")
    assert aborted == 1 and [e.name for e in seen][-2:] == ["abort", "end"] and stream.aborted


async def test_closing_the_stream_stops_the_run(client: AsyncClient, server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokenCount=5000, delayMs=5))
    async with client.stream(chatflow_id, "long", chat_id="a-hang-up") as stream:
        async for event in stream:
            if isinstance(event, events.Token):
                await stream.close()
    for _ in range(250):
        messages = await client.history(chatflow_id, chat_id="a-hang-up")
        if len(messages) == 2 and messages[1].status == "aborted":
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the run did not stop")


async def test_chatflow_crud_and_upsert(client: AsyncClient) -> None:
    created = await client.create_chatflow("async", rag_flow(fake_model(tokens=["Paris."]), texts=[]))
    assert await client.is_streaming(created.id) is True
    assert (await client.chatflow(created.id)).name == "async"
    assert created.id in [c.id for c in await client.chatflows()]
    assert (await client.update_chatflow(created.id, name="renamed")).name == "renamed"
    result = await client.upsert(created.id, [("extra.fake", b"Rome is in Italy.\n")])
    assert result.num_added == 1 and result.added_docs[0].metadata == {"source": "extra.fake", "line": 1}
    await client.update_chatflow(created.id, api_config=overrides_enabled("fakeTextLoader", "texts"))
    loaded = await client.upsert(created.id, override_config={"texts": json.dumps(TEXTS)})
    assert loaded.num_added == 2
    async with client.stream(created.id, "France?") as stream:
        seen = [event async for event in stream]
    assert "sourceDocuments" in [e.name for e in seen] and stream.source_documents
    await client.delete_chatflow(created.id)
    with pytest.raises(errors.HTTPStatusError) as caught:
        await client.chatflow(created.id)
    assert caught.value.status == 404


async def test_unknown_chatflow_and_error_events(client: AsyncClient, server: LiveServer) -> None:
    with pytest.raises(errors.HTTPStatusError) as caught:
        async with client.stream("no-such-flow", "q"):
            pass
    assert caught.value.status == 404
    with pytest.raises(errors.HTTPStatusError):
        await client.stream("no-such-flow", "q")
    chatflow_id = server.create_flow(fake_flow(tokens=["a", "b"], failAt=1))
    with pytest.raises(errors.StreamError) as failed:
        async with client.stream(chatflow_id, "q") as stream:
            async for _ in stream:
                pass
    assert failed.value.text == "a"
    async with client.stream(chatflow_id, "q", raise_on_error=False) as stream:
        seen = [event async for event in stream]
    assert [e.name for e in seen][-2:] == ["error", "end"]


async def test_a_silent_server_is_a_timeout(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["slow"], delayMs=3000))
    async with AsyncClient(server.base_url, timeout=0.3) as sdk:
        with pytest.raises(errors.Timeout):
            async with sdk.stream(chatflow_id, "q") as stream:
                async for _ in stream:
                    pass
