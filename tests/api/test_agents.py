"""The Tool Agent over the routes, against the stub's scripted tool calls (real openai SDK path):
events in Flowise's order, only the final answer as tokens, the protocol round trips, tool failures,
limits, abort, memory and history."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from streamwise.app import create_app, node_services
from streamwise.settings import Settings
from tests.api.helpers import create_flow, stream
from tests.conftest import FAKE_MODULES
from tests.support import fake_tools
from tests.support.flows import agent_flow, fake_model, fake_tool, node, openai_model, stub_calls
from tests.support.openai_stub import StubServer, expected_text, serve_in_thread
from tests.support.sse import Frame, check_invariant, parse_frames
from tests.support.waiting import until

SECRET = "TOOL-OUTPUT-7f3a"  # a tool output that must never reach a token


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with serve_in_thread() as running:
        yield running


def model(stub: StubServer, *rounds: list[tuple[str, str]], **controls: Any) -> dict[str, Any]:
    return openai_model(stub.base_url, modelName=stub_calls(*rounds, **controls))


def sent(stub: StubServer, model_node: dict[str, Any]) -> list[dict[str, Any]]:
    name = model_node["data"]["inputs"]["modelName"]
    return [record.body for record in stub.records() if record.model == name]


def events(frames: list[Frame]) -> list[str]:
    names = [frame.event for frame in frames]
    collapsed: list[str] = []
    for name in names:  # runs of tokens as one
        if not (name == "token" and collapsed and collapsed[-1] == "token"):
            collapsed.append(name)
    return collapsed


def no_tool_output_in_tokens(frames: list[Frame]) -> None:
    for frame in frames:
        if frame.event == "token":
            assert SECRET not in frame.data and "got {" not in frame.data, frame


async def test_one_call_then_the_answer_in_flowise_order(client: httpx.AsyncClient, stub: StubServer) -> None:
    chat = model(stub, [("lookup", '{"input": "2+2"}')], tokens=6, case="one")
    tool = fake_tool("tool_0", "lookup", output=SECRET)
    chatflow_id = await create_flow(client, agent_flow(chat, [tool]))
    assert (await client.get(f"/api/v1/chatflows-streaming/{chatflow_id}")).json() == {"isStreaming": True}

    frames = await stream(client, chatflow_id, {"question": "What is 2+2?", "chatId": "one"})
    assert check_invariant(frames) == expected_text(6)
    assert events(frames) == ["start", "calledTools", "token", "usedTools", "metadata", "end"]
    no_tool_output_in_tokens(frames)
    called = next(f for f in frames if f.event == "calledTools").data
    assert called == [{"tool": "lookup", "toolInput": {"input": "2+2"}, "toolOutput": ""}]
    used = frames[-3].data
    assert used == [{"tool": "lookup", "toolInput": {"input": "2+2"}, "toolOutput": SECRET}]

    first, second = sent(stub, chat)[-2:]
    assert first["tools"] == [
        {
            "type": "function",
            "function": {"name": "lookup", "description": "A fake tool", "parameters": fake_tools.PARAMETERS},
        }
    ]
    assert first["messages"][0] == {"role": "system", "content": "You are a helpful AI assistant."}
    assert second["messages"][-2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_r0_0",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"input": "2+2"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_r0_0", "content": SECRET},
    ]

    history = (await client.get(f"/api/v1/chatmessage/{chatflow_id}", params={"chatId": "one"})).json()
    assert history[1]["role"] == "apiMessage" and history[1]["usedTools"] == used
    assert history[1]["content"] == expected_text(6)

    # The next turn remembers the exchange as question and answer, without the tool round.
    await stream(client, chatflow_id, {"question": "And 3+3?", "chatId": "one"})
    remembered = sent(stub, chat)[-2]["messages"]
    assert remembered[1:4] == [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": expected_text(6)},
        {"role": "user", "content": "And 3+3?"},
    ]


async def test_the_json_answer_carries_used_tools(client: httpx.AsyncClient, stub: StubServer) -> None:
    chat = model(stub, [("lookup", '{"input": "x"}')], tokens=3, case="json")
    chatflow_id = await create_flow(client, agent_flow(chat, [fake_tool("tool_0", "lookup", output="42")]))
    answer = await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["text"] == expected_text(3)
    assert body["usedTools"] == [{"tool": "lookup", "toolInput": {"input": "x"}, "toolOutput": "42"}]


async def test_parallel_calls_and_a_chain_of_rounds(client: httpx.AsyncClient, stub: StubServer) -> None:
    chat = model(
        stub,
        [("a", '{"input": "first"}'), ("b", '{"input": "second"}')],
        [("a", '{"input": "third"}')],
        tokens=4,
        split=1,  # every character of the arguments in its own delta
        case="parallel",
    )
    tools = [fake_tool("tool_0", "a"), fake_tool("tool_1", "b", delayMs=50)]
    chatflow_id = await create_flow(client, agent_flow(chat, tools))
    frames = await stream(client, chatflow_id, {"question": "q", "chatId": "p"})
    assert check_invariant(frames) == expected_text(4)
    assert events(frames) == ["start", "calledTools", "calledTools", "token", "usedTools", "metadata", "end"]
    used = frames[-3].data
    assert [(u["tool"], u["toolInput"]["input"]) for u in used] == [
        ("a", "first"),
        ("b", "second"),
        ("a", "third"),
    ]
    assert used[1]["toolOutput"] == 'b got {"input": "second"}'
    rounds = sent(stub, chat)[-3:]
    assert [m["tool_call_id"] for m in rounds[1]["messages"] if m["role"] == "tool"] == [
        "call_r0_0",
        "call_r0_1",
    ]
    assert [m["tool_call_id"] for m in rounds[2]["messages"] if m["role"] == "tool"] == [
        "call_r0_0",
        "call_r0_1",
        "call_r1_0",
    ]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (("lookup", '{"input": '), "the arguments are not a JSON object"),
        (("lookup", '["not", "an", "object"]'), "the arguments are not a JSON object"),
        (("nosuch", "{}"), "there is no tool named 'nosuch'; the tools are: lookup"),
    ],
)
async def test_a_malformed_call_goes_back_to_the_model_as_an_error(
    client: httpx.AsyncClient, stub: StubServer, call: tuple[str, str], error: str
) -> None:
    chat = model(stub, [call], tokens=2, case=f"bad-{call[1]}")
    chatflow_id = await create_flow(client, agent_flow(chat, [fake_tool("tool_0", "lookup")]))
    frames = await stream(client, chatflow_id, {"question": "q"})
    assert check_invariant(frames) == expected_text(2)
    [used] = frames[-3].data
    assert used["error"] == error and used["toolOutput"] == error
    tool_turn = sent(stub, chat)[-1]["messages"][-1]
    assert tool_turn == {"role": "tool", "tool_call_id": "call_r0_0", "content": f"Error: {error}"}


async def test_a_failing_tool_is_reported_and_the_run_ends_cleanly(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    chat = model(stub, [("refuses", "{}"), ("crashes", "{}")], tokens=2, case="failing")
    tools = [
        fake_tool("tool_0", "refuses", fail="no such city"),
        fake_tool("tool_1", "crashes", fail="crash"),
    ]
    chatflow_id = await create_flow(client, agent_flow(chat, tools))
    frames = await stream(client, chatflow_id, {"question": "q", "chatId": "f"})
    assert check_invariant(frames) == expected_text(2)
    refused, crashed = frames[-3].data
    assert refused["error"] == "no such city"
    assert crashed["error"] == "the tool failed unexpectedly"
    assert "secret" not in json.dumps(frames[-3].data)  # the exception's text stays in the log


async def test_max_iterations_ends_with_langchains_sentence(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    loop_forever = [("lookup", "{}")]
    chat = model(stub, loop_forever, loop_forever, loop_forever, tokens=2, case="iterations")
    chatflow_id = await create_flow(
        client, agent_flow(chat, [fake_tool("tool_0", "lookup")], maxIterations=2)
    )
    frames = await stream(client, chatflow_id, {"question": "q"})
    assert check_invariant(frames) == "Agent stopped due to max iterations."
    assert len(frames[-3].data) == 2  # two rounds of one call each
    assert len(sent(stub, chat)) == 2


async def test_a_model_that_cannot_call_tools_is_refused_at_save(client: httpx.AsyncClient) -> None:
    flow = agent_flow(fake_model(tokens=["x"]), [fake_tool("tool_0", "lookup")])
    answer = await client.post("/api/v1/chatflows", json={"name": "x", "flowData": flow})
    assert answer.status_code == 400
    assert "toolAgent_0" in answer.json()["message"] and "call tools" in answer.json()["message"]


async def test_a_custom_javascript_tool_is_refused_at_save(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    custom = node(
        "customTool_0", "customTool", "Tools", {"customToolFunc": "return require('child_process')"}
    )
    flow = agent_flow(model(stub, case="custom"), [custom])
    answer = await client.post("/api/v1/chatflows", json={"name": "x", "flowData": flow})
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert "customTool_0" in message and "JavaScript" in message
    assert (await client.get("/api/v1/chatflows")).json() == [] or all(
        f["name"] != "x" for f in (await client.get("/api/v1/chatflows")).json()
    )


async def test_two_tools_of_one_name_are_refused_at_save(client: httpx.AsyncClient, stub: StubServer) -> None:
    flow = agent_flow(model(stub, case="dup"), [fake_tool("tool_0", "same"), fake_tool("tool_1", "same")])
    answer = await client.post("/api/v1/chatflows", json={"name": "x", "flowData": flow})
    assert answer.status_code == 400 and "'same'" in answer.json()["message"]


async def test_text_before_the_calls_of_a_round_is_part_of_the_answer(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    """What the model writes is the answer's text, whichever round it is in; only tool traffic is kept
    out of the tokens."""
    chat = model(stub, [("lookup", "{}")], tokens=2, preamble=1, case="preamble")
    chatflow_id = await create_flow(client, agent_flow(chat, [fake_tool("tool_0", "lookup", output=SECRET)]))
    frames = await stream(client, chatflow_id, {"question": "q"})
    assert check_invariant(frames) == "Let me check. " + expected_text(2)
    no_tool_output_in_tokens(frames)
    assert sent(stub, chat)[-1]["messages"][-2]["content"] == "Let me check. "


async def test_a_non_streaming_model_calls_tools_too(client: httpx.AsyncClient, stub: StubServer) -> None:
    chat = openai_model(
        stub.base_url,
        modelName=stub_calls([("lookup", '{"input": "n"}')], tokens=3, case="nostream"),
        streaming=False,
    )
    chatflow_id = await create_flow(client, agent_flow(chat, [fake_tool("tool_0", "lookup", output="out")]))
    assert (await client.get(f"/api/v1/chatflows-streaming/{chatflow_id}")).json() == {"isStreaming": False}
    answer = await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "streaming": True})
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["text"] == expected_text(3)
    assert answer.json()["usedTools"] == [
        {"tool": "lookup", "toolInput": {"input": "n"}, "toolOutput": "out"}
    ]
    assert [body["stream"] for body in sent(stub, chat)] == [False, False]


async def test_ollama_tool_calls_round_trip(client: httpx.AsyncClient, stub: StubServer) -> None:
    name = stub_calls([("lookup", '{"input": "o"}')], tokens=3, case="ollama")
    chat = node(
        "chatOllama_0",
        "chatOllama",
        "Chat Models",
        {"baseUrl": stub.url, "modelName": name, "streaming": True},
    )
    chatflow_id = await create_flow(client, agent_flow(chat, [fake_tool("tool_0", "lookup", output=SECRET)]))
    frames = await stream(client, chatflow_id, {"question": "q"})
    assert check_invariant(frames) == expected_text(3)
    no_tool_output_in_tokens(frames)
    assert frames[-3].data == [{"tool": "lookup", "toolInput": {"input": "o"}, "toolOutput": SECRET}]
    second = [r.body for r in stub.records() if r.model == name][-1]
    assert second["messages"][-2]["tool_calls"] == [
        {"function": {"name": "lookup", "arguments": {"input": "o"}}}
    ]
    assert second["messages"][-1] == {"role": "tool", "content": SECRET, "tool_name": "lookup"}
    assert second["tools"][0]["function"]["name"] == "lookup"


async def test_a_retriever_tools_passages_are_sources_of_the_call_and_of_the_answer(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    chat = model(stub, [("docs", '{"input": "bananas"}')], tokens=2, case="retriever")
    tool = fake_tool(
        "tool_0", "docs", sources=json.dumps(["Bananas are yellow."]), output="Bananas are yellow."
    )
    chatflow_id = await create_flow(client, agent_flow(chat, [tool]))
    frames = await stream(client, chatflow_id, {"question": "q"})
    assert events(frames) == [
        "start",
        "calledTools",
        "token",
        "sourceDocuments",
        "usedTools",
        "metadata",
        "end",
    ]
    passage = {"pageContent": "Bananas are yellow.", "metadata": {"source": "docs-0"}}
    assert frames[-4].data == [passage]
    assert frames[-3].data[0]["sourceDocuments"] == [passage]


async def settings_app(tmp_path: Path, **changes: Any) -> FastAPI:
    settings = Settings(
        data_dir=tmp_path, seed=False, preload_local_model=False, node_modules=FAKE_MODULES, **changes
    )
    services = node_services(settings)  # the tool policy and deadlines follow the settings
    services.env = {}
    return create_app(settings, services)


async def test_a_slow_tool_times_out_as_an_error_result(tmp_path: Path, stub: StubServer) -> None:
    app = await settings_app(tmp_path, tool_timeout_seconds=0.3)
    chat = model(stub, [("slow", "{}")], tokens=2, case="timeout")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as client:
            chatflow_id = await create_flow(
                client, agent_flow(chat, [fake_tool("tool_0", "slow", delayMs=5000)])
            )
            async with asyncio.timeout(10):
                frames = await stream(client, chatflow_id, {"question": "q"})
    assert check_invariant(frames) == expected_text(2)
    assert frames[-3].data[0]["error"] == "the tool did not finish within 0.3 s"


async def test_the_whole_answer_has_a_deadline(tmp_path: Path, stub: StubServer) -> None:
    app = await settings_app(tmp_path, agent_deadline_seconds=0.5, tool_timeout_seconds=0.4)
    rounds = [[("slow", "{}")]] * 5
    chat = model(stub, *rounds, tokens=2, case="deadline")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as client:
            chatflow_id = await create_flow(
                client, agent_flow(chat, [fake_tool("tool_0", "slow", delayMs=300)])
            )
            async with asyncio.timeout(10):
                frames = await stream(client, chatflow_id, {"question": "q", "chatId": "d"})
                history = (
                    await client.get(f"/api/v1/chatmessage/{chatflow_id}", params={"chatId": "d"})
                ).json()
    assert [f.event for f in frames][-2:] == ["error", "end"]
    assert "toolAgent_0" in frames[-2].data and "0.5 s" in frames[-2].data
    assert history[1]["status"] == "error" and history[1]["usedTools"]


async def test_an_abort_mid_tool_cancels_it_and_stores_the_tools_used_so_far(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    chat = model(stub, [("quick", "{}")], [("slow", "{}")], tokens=2, case="abort")
    tools = [fake_tool("tool_0", "quick", output="fast"), fake_tool("tool_1", "slow", delayMs=20_000)]
    chatflow_id = await create_flow(client, agent_flow(chat, tools))
    cancelled = fake_tools.CANCELLED["slow"]
    body = {"question": "q", "streaming": True, "chatId": "ab"}
    pending = asyncio.ensure_future(client.post(f"/api/v1/prediction/{chatflow_id}", json=body))
    await until(lambda: fake_tools.RUNNING["slow"] > 0, within=10)
    aborted = await client.put(f"/api/v1/chatmessage/abort/{chatflow_id}/ab")
    assert aborted.json()["aborted"] == 1
    async with asyncio.timeout(10):
        frames = parse_frames((await pending).content)
    names = [f.event for f in frames]
    assert names[-2:] == ["abort", "end"] and names.count("calledTools") == 2 and "token" not in names
    assert fake_tools.CANCELLED["slow"] == cancelled + 1 and fake_tools.RUNNING["slow"] == 0
    history = (await client.get(f"/api/v1/chatmessage/{chatflow_id}", params={"chatId": "ab"})).json()
    assert history[1]["status"] == "aborted"
    assert history[1]["usedTools"] == [{"tool": "quick", "toolInput": {}, "toolOutput": "fast"}]
