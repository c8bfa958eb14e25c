"""`streamwise.client.Client` against a live server with the scripted fake model."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamwise.client import Client, errors, events
from tests.support.flows import (
    agent_flow,
    fake_flow,
    fake_model,
    fake_tool,
    openai_model,
    overrides_enabled,
    rag_flow,
    stub_calls,
)
from tests.support.openai_stub import StubServer, expected_text, serve_in_thread
from tests.support.server import LiveServer

TEXTS = ["The capital of France is Paris.", "Bananas are yellow.", "The capital of Italy is Rome."]


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    with Client(server.base_url, timeout=30) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with serve_in_thread() as running:
        yield running


def names(items: list[events.Event]) -> list[str]:
    return [item.name for item in items]


def wait_for(check: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_predict_returns_the_whole_answer_with_its_ids(client: Client, server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(memory="bufferMemory", tokens=["Hello", " world"]))
    answer = client.predict(chatflow_id, "Hi", chat_id="p1")
    assert answer.text == "Hello world" and answer.question == "Hi"
    assert answer.chat_id == "p1" and answer.chat_message_id
    assert answer.memory_type == "Buffer Memory" and answer.session_id == "p1"
    assert answer.source_documents == [] and answer.used_tools == [] and not answer.aborted
    assert answer.raw["text"] == "Hello world"


def test_stream_yields_typed_events_in_order(client: Client, server: LiveServer) -> None:
    tokens = ["Why", " did", " the", " chicken", "?"]
    chatflow_id = server.create_flow(fake_flow(memory="bufferMemory", tokens=tokens))
    with client.stream(chatflow_id, "Joke?", chat_id="s1") as stream:
        seen = list(stream)
        assert stream.streamed and stream.done
    assert names(seen) == ["start", *["token"] * 5, "metadata", "end"]
    assert seen[0] == events.Start("Why")
    assert [e.data for e in seen if isinstance(e, events.Token)] == tokens
    assert stream.text == "Why did the chicken?"
    meta = seen[-2]
    assert isinstance(meta, events.Metadata)
    assert (meta.chat_id, meta.question, meta.session_id, meta.memory_type) == (
        "s1",
        "Joke?",
        "s1",
        "Buffer Memory",
    )
    result = stream.result()
    assert result.text == stream.text and result.chat_message_id == meta.chat_message_id
    stored = client.history(chatflow_id, chat_id="s1")
    assert stored[-1].id == meta.chat_message_id and stored[-1].content == stream.text


def test_iter_text_gives_only_the_tokens(client: Client, server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["a", "b", "c"]))
    with client.stream(chatflow_id, "q") as stream:
        assert list(stream.iter_text()) == ["a", "b", "c"]


def test_upsert_then_stream_with_sources(client: Client, server: LiveServer) -> None:
    chatflow_id = server.create_flow(rag_flow(fake_model(tokens=["It", " is", " Paris."]), texts=TEXTS))
    result = client.upsert(chatflow_id)
    assert (result.num_added, result.num_skipped) == (3, 0)
    assert [doc.page_content for doc in result.added_docs] == TEXTS
    again = client.upsert(chatflow_id)
    assert (again.num_added, again.num_skipped, again.added_docs) == (0, 3, [])
    with client.stream(chatflow_id, "What is the capital of France?") as stream:
        seen = list(stream)
    assert names(seen) == ["start", "token", "token", "token", "sourceDocuments", "metadata", "end"]
    sources = seen[4]
    assert isinstance(sources, events.SourceDocuments)
    assert sources.documents[0].page_content == TEXTS[0]
    assert sources.documents[0].metadata["source"] == "text-0"
    assert stream.source_documents == sources.documents
    answer = client.predict(chatflow_id, "capital of Italy")
    assert answer.text == "It is Paris." and answer.source_documents[0].page_content == TEXTS[2]


def test_upsert_files_and_override_config(client: Client, server: LiveServer, tmp_path: Path) -> None:
    chatflow_id = server.create_flow(rag_flow(fake_model(), texts=[]))
    notes = tmp_path / "notes.fake"
    notes.write_text("from a path\n")
    result = client.upsert(chatflow_id, [notes, ("more.fake", b"first\n\nsecond\n")])
    assert [doc.metadata for doc in result.added_docs] == [
        {"source": "notes.fake", "line": 1},
        {"source": "more.fake", "line": 1},
        {"source": "more.fake", "line": 3},
    ]
    client.update_chatflow(chatflow_id, api_config=overrides_enabled("fakeTextLoader", "texts"))
    given = client.upsert(chatflow_id, override_config={"texts": json.dumps(["Given at upsert."])})
    assert given.num_added == 1 and given.added_docs[0].page_content == "Given at upsert."


def test_an_agent_streams_called_and_used_tools(client: Client, server: LiveServer, stub: StubServer) -> None:
    chat = openai_model(
        stub.base_url, modelName=stub_calls([("lookup", '{"input": "2+2"}')], tokens=4, case="sdk")
    )
    chatflow_id = server.create_flow(agent_flow(chat, [fake_tool("tool_0", "lookup", output="four")]))
    with client.stream(chatflow_id, "What is 2+2?", chat_id="agent") as stream:
        seen = list(stream)
    collapsed = [n for i, n in enumerate(names(seen)) if not (n == "token" and names(seen)[i - 1] == "token")]
    assert collapsed == ["start", "calledTools", "token", "usedTools", "metadata", "end"]
    called = next(e for e in seen if isinstance(e, events.CalledTools))
    assert [(t.tool, t.tool_input, t.tool_output) for t in called.tools] == [("lookup", {"input": "2+2"}, "")]
    used = next(e for e in seen if isinstance(e, events.UsedTools))
    assert [(t.tool, t.tool_input, t.tool_output, t.error) for t in used.tools] == [
        ("lookup", {"input": "2+2"}, "four", None)
    ]
    assert stream.text == expected_text(4) and stream.used_tools == used.tools
    answer = client.predict(chatflow_id, "Again?", chat_id="agent-json")
    assert answer.used_tools[0].tool == "lookup" and answer.used_tools[0].tool_output == "four"
    history = client.history(chatflow_id, chat_id="agent")
    assert history[1].used_tools == used.tools


def test_abort_mid_stream_yields_abort_then_end(client: Client, server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokenCount=2000, delayMs=5))
    seen: list[events.Event] = []
    aborted = None
    with client.stream(chatflow_id, "long", chat_id="to-abort") as stream:
        for event in stream:
            seen.append(event)
            if aborted is None and len(seen) == 4:
                aborted = client.abort(chatflow_id, "to-abort")
    assert aborted == 1
    assert names(seen)[-2:] == ["abort", "end"] and stream.aborted
    assert client.abort(chatflow_id, "to-abort") == 0
    [_, answer] = client.history(chatflow_id, chat_id="to-abort")
    assert answer.status == "aborted" and answer.content == stream.text


def test_closing_the_stream_stops_the_run(client: Client, server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokenCount=5000, delayMs=5))
    with client.stream(chatflow_id, "long", chat_id="hang-up") as stream:
        for event in stream:
            if isinstance(event, events.Token) and event.data == "t2 ":
                stream.close()
        # iteration ends quietly after close: no StreamClosedEarly for a hang-up of our own
        assert list(stream) == []

    def stopped() -> bool:
        messages = client.history(chatflow_id, chat_id="hang-up")
        return len(messages) == 2 and messages[1].status == "aborted"

    wait_for(stopped)


def test_history_orders_and_filters(client: Client, server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(memory="bufferMemory", tokens=["ok"]))
    client.predict(chatflow_id, "one", chat_id="h1")
    client.predict(chatflow_id, "two", chat_id="h1")
    client.predict(chatflow_id, "other", session_id="h2")
    messages = client.history(chatflow_id, chat_id="h1")
    assert [(m.role, m.content) for m in messages] == [
        ("userMessage", "one"),
        ("apiMessage", "ok"),
        ("userMessage", "two"),
        ("apiMessage", "ok"),
    ]
    assert all(m.status == "complete" and m.chat_id == "h1" and m.created_date for m in messages)
    assert [m.id for m in client.history(chatflow_id, chat_id="h1", order="DESC")] == [
        m.id for m in reversed(messages)
    ]
    assert [m.content for m in client.history(chatflow_id, session_id="h2")] == ["other", "ok"]
    assert client.delete_history(chatflow_id, chat_id="h1") == 4
    assert client.history(chatflow_id, chat_id="h1") == []


def test_history_is_sent_as_seed_turns(client: Client, server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(memory="bufferMemory", echo=True))
    answer = client.predict(
        chatflow_id, "Name?", chat_id="seeded", history=[{"role": "userMessage", "content": "I am Ada."}]
    )
    assert "user: I am Ada." in answer.text


def test_chatflow_crud(client: Client) -> None:
    flow = json.loads(fake_flow(tokens=["x"]))
    created = client.create_chatflow("sdk flow", flow, chatbot_config={"title": "Hi"}, is_public=True)
    assert created.name == "sdk flow" and created.is_public and not created.deployed
    assert created.chatbot_config == {"title": "Hi"} and created.flow == flow
    assert client.chatflow(created.id) == created
    assert created.id in [c.id for c in client.chatflows()]
    assert client.is_streaming(created.id) is True
    updated = client.update_chatflow(created.id, name="renamed", deployed=True)
    assert (updated.name, updated.deployed, updated.chatbot_config) == ("renamed", True, {"title": "Hi"})
    client.delete_chatflow(created.id)
    with pytest.raises(errors.HTTPStatusError) as caught:
        client.chatflow(created.id)
    assert caught.value.status == 404 and caught.value.message == f"Chatflow {created.id} not found"
    with pytest.raises(errors.HTTPStatusError) as bad:
        client.create_chatflow("broken", "not json")
    assert bad.value.status == 400


def test_stream_of_an_unknown_chatflow_raises_404_at_once(client: Client) -> None:
    with pytest.raises(errors.HTTPStatusError) as caught:
        client.stream("no-such-flow", "q")
    assert caught.value.status == 404 and "no-such-flow" in caught.value.message


def test_a_flow_that_cannot_stream_is_streamed_from_its_json(client: Client, server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["all", " at", " once"], streaming=False))
    assert client.is_streaming(chatflow_id) is False
    with client.stream(chatflow_id, "q", chat_id="json") as stream:
        seen = list(stream)
    assert not stream.streamed
    assert names(seen) == ["start", "token", "metadata", "end"]
    assert stream.text == "all at once" and stream.metadata is not None and stream.metadata.chat_id == "json"


def test_an_error_event_raises_or_is_yielded(client: Client, server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["a", "b", "c"], failAt=2))
    with pytest.raises(errors.StreamError) as caught, client.stream(chatflow_id, "q") as stream:
        list(stream)
    assert "scripted failure" in caught.value.message and caught.value.text == "ab"
    with client.stream(chatflow_id, "q", raise_on_error=False) as stream:
        seen = list(stream)
    assert names(seen)[-2:] == ["error", "end"] and stream.error and "scripted failure" in stream.error
    with pytest.raises(errors.HTTPStatusError) as json_error:
        client.predict(chatflow_id, "q")
    assert json_error.value.status >= 500 and "scripted failure" in json_error.value.message


def test_a_silent_server_is_a_timeout(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["slow", "er"], delayMs=3000))
    with (
        Client(server.base_url, timeout=0.3) as sdk,
        pytest.raises(errors.Timeout),
        sdk.stream(chatflow_id, "q") as stream,
    ):
        list(stream)
