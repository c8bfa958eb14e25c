"""The agent's own tool nodes over the routes: a retriever tool over a real upserted store, another
chatflow as a tool (in process, bounded when chatflows call each other), and a client that hangs up
while a tool runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamwise.app import create_app, node_services
from streamwise.settings import Settings
from tests.api.helpers import create_flow, stream
from tests.conftest import FAKE_MODULES
from tests.support import fake_tools
from tests.support.flows import (
    agent_flow,
    edge,
    fake_flow,
    fake_tool,
    node,
    openai_model,
    overrides_enabled,
    rag_flow,
    ref,
    stub_calls,
)
from tests.support.mcp_server import serve_in_subprocess
from tests.support.openai_stub import StubServer, expected_text, serve_in_thread
from tests.support.server import LiveServer
from tests.support.sse import check_invariant

TEXTS = ["Bananas are yellow and grow in bunches.", "Rome is the capital of Italy."]


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with serve_in_thread() as running:
        yield running


def retriever_agent(stub: StubServer, model_name: str, **tool_inputs: Any) -> str:
    """fakeTextLoader → fakeVectorStore (fakeEmbeddings) → retrieverTool → toolAgent (ChatOpenAI)."""
    flow = json.loads(rag_flow(openai_model(stub.base_url, modelName=model_name), texts=TEXTS, top_k=1))
    flow["nodes"] = [n for n in flow["nodes"] if n["id"] != "chain_0"]
    flow["edges"] = [e for e in flow["edges"] if e["target"] != "chain_0"]
    tool = node(
        "retrieverTool_0",
        "retrieverTool",
        "Tools",
        {
            "name": "fruit_facts",
            "description": "Facts about fruit",
            "retriever": ref("vectorStore_0"),
            **tool_inputs,
        },
    )
    agent = node(
        "toolAgent_0",
        "toolAgent",
        "Agents",
        {"model": ref("chatOpenAI_0"), "tools": [ref("retrieverTool_0")]},
    )
    flow["nodes"] += [tool, agent]
    flow["edges"] += [
        edge("vectorStore_0", "retrieverTool_0", "retriever"),
        edge("retrieverTool_0", "toolAgent_0", "tools"),
        edge("chatOpenAI_0", "toolAgent_0", "model"),
    ]
    return json.dumps(flow)


async def test_a_retriever_tool_looks_up_the_store_and_returns_its_passages(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    name = stub_calls(
        [("fruit_facts", '{"input": "What colour are bananas?"}')], tokens=3, case="retriever-tool"
    )
    chatflow_id = await create_flow(client, retriever_agent(stub, name, returnSourceDocuments=True))
    assert (await client.post(f"/api/v1/vector/upsert/{chatflow_id}", json={})).json()["numAdded"] == 2
    frames = await stream(client, chatflow_id, {"question": "Bananas?"})
    assert check_invariant(frames) == expected_text(3)
    passage = {"pageContent": TEXTS[0], "metadata": {"source": "text-0"}}
    assert [f.event for f in frames][-4:] == ["sourceDocuments", "usedTools", "metadata", "end"]
    assert frames[-4].data == [passage]
    [used] = frames[-3].data
    assert used["toolOutput"] == TEXTS[0] and used["sourceDocuments"] == [passage]
    offered = next(r.body for r in stub.records() if r.model == name)["tools"][0]["function"]
    assert offered["name"] == "fruit_facts" and offered["parameters"]["required"] == ["input"]


async def test_without_return_source_documents_the_passages_only_reach_the_model(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    name = stub_calls([("fruit_facts", '{"input": "Italy capital"}')], tokens=2, case="retriever-quiet")
    chatflow_id = await create_flow(client, retriever_agent(stub, name))
    await client.post(f"/api/v1/vector/upsert/{chatflow_id}", json={})
    frames = await stream(client, chatflow_id, {"question": "Capital?"})
    assert "sourceDocuments" not in [f.event for f in frames]
    assert frames[-3].data[0]["toolOutput"] == TEXTS[1]
    assert [r.body for r in stub.records() if r.model == name][-1]["messages"][-1]["content"] == TEXTS[1]


def chatflow_tool(selected: str, **inputs: Any) -> dict[str, Any]:
    return node(
        "chatflowTool_0",
        "chatflowTool",
        "Tools",
        {
            "selectedChatflow": selected,
            "name": "ask_other",
            "description": "Asks the other chatflow",
            **inputs,
        },
    )


async def test_a_chatflow_tool_asks_another_chatflow_in_process(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    other = await create_flow(client, fake_flow(tokens=["Other", " says", " hi"]), name="other")
    name = stub_calls([("ask_other", '{"input": "Hello other"}')], tokens=2, case="chatflow-tool")
    agent = await create_flow(
        client, agent_flow(openai_model(stub.base_url, modelName=name), [chatflow_tool(other)])
    )
    frames = await stream(client, agent, {"question": "q", "chatId": "shared"})
    assert check_invariant(frames) == expected_text(2)
    [used] = frames[-3].data
    assert used == {"tool": "ask_other", "toolInput": {"input": "Hello other"}, "toolOutput": "Other says hi"}
    # As in Flowise, the other chatflow's exchange is stored under the calling chat's id.
    theirs = (await client.get(f"/api/v1/chatmessage/{other}", params={"chatId": "shared"})).json()
    assert [m["content"] for m in theirs] == ["Hello other", "Other says hi"]


async def test_a_chatflow_tool_refuses_itself_an_unknown_chatflow_and_endless_chains(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    name = stub_calls([("ask_other", '{"input": "again"}')], tokens=2, case="chatflow-self")
    itself = await create_flow(
        client,
        agent_flow(openai_model(stub.base_url, modelName=name), [chatflow_tool("agent-self")]),
        chatflow_id="agent-self",
    )
    frames = await stream(client, itself, {"question": "q"})
    assert frames[-3].data[0]["error"] == "a chatflow cannot call itself"

    unknown = await create_flow(
        client, agent_flow(openai_model(stub.base_url, modelName=name), [chatflow_tool("no-such-flow")])
    )
    frames = await stream(client, unknown, {"question": "q"})
    assert frames[-3].data[0]["error"] == "there is no chatflow 'no-such-flow'"

    # Two agents that ask each other: bounded, and every level still ends cleanly.
    ping_name = stub_calls([("ask_other", '{"input": "ping"}')], tokens=1, case="ping")
    pong_name = stub_calls([("ask_other", '{"input": "pong"}')], tokens=1, case="pong")
    ping_flow = agent_flow(
        openai_model(stub.base_url, modelName=ping_name),
        [chatflow_tool("agent-pong", startNewSession=True)],
        memory=None,
    )
    pong_flow = agent_flow(
        openai_model(stub.base_url, modelName=pong_name),
        [chatflow_tool("agent-ping", startNewSession=True)],
        memory=None,
    )
    await create_flow(client, ping_flow, chatflow_id="agent-ping")
    await create_flow(client, pong_flow, chatflow_id="agent-pong")
    frames = await stream(client, "agent-ping", {"question": "start"})
    assert check_invariant(frames) == expected_text(1)
    requests = [r for r in stub.records() if r.model in (ping_name, pong_name)]
    assert len(requests) == 8  # four levels, two model rounds each; the deepest call was refused
    deepest = [r.body for r in requests if r.body["messages"][-1].get("role") == "tool"]
    assert any("at most 3 deep" in body["messages"][-1]["content"] for body in deepest)


def test_a_client_that_hangs_up_mid_tool_cancels_it_and_the_exchange_is_stored(
    server: LiveServer, stub: StubServer
) -> None:
    name = stub_calls([("slow", "{}")], tokens=2, case="hangup")
    chatflow_id = server.create_flow(
        agent_flow(openai_model(stub.base_url, modelName=name), [fake_tool("tool_0", "slow", delayMs=20_000)])
    )
    cancelled = fake_tools.CANCELLED["slow"]
    body = {"question": "q", "streaming": True, "chatId": "gone"}
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", f"{server.base_url}/api/v1/prediction/{chatflow_id}", json=body) as response,
    ):
        seen = b""
        for chunk in response.iter_bytes():
            seen += chunk
            if b'"calledTools"' in seen:
                break  # hang up while the tool runs
    deadline = time.monotonic() + 10
    history: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        history = httpx.get(
            f"{server.base_url}/api/v1/chatmessage/{chatflow_id}", params={"chatId": "gone"}
        ).json()
        if len(history) == 2 and history[1]["status"] != "running":
            break
        time.sleep(0.05)
    assert history[1]["status"] == "aborted", history
    assert fake_tools.CANCELLED["slow"] == cancelled + 1


async def test_an_mcp_servers_tools_are_the_agents_tools(tmp_path: Path, stub: StubServer) -> None:
    """customMCP against a real MCP server on 127.0.0.1 (private addresses allowed by the setting):
    its tool list is offered to the model, and the call goes over streamable HTTP."""
    settings = Settings(
        data_dir=tmp_path,
        seed=False,
        preload_local_model=False,
        node_modules=FAKE_MODULES,
        http_tool_allow_private=True,
    )
    services = node_services(settings)
    services.env = {}
    app = create_app(settings, services)
    name = stub_calls([("add", '{"a": 40, "b": 2}')], tokens=2, case="mcp")
    with serve_in_subprocess() as mcp:
        config = json.dumps({"url": mcp.http_url})
        tool = node(
            "customMCP_0", "customMCP", "Tools", {"mcpServerConfig": config, "mcpActions": '["add", "echo"]'}
        )
        flow = agent_flow(openai_model(stub.base_url, modelName=name), [tool])
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://localhost", timeout=30
            ) as client:
                chatflow_id = await create_flow(client, flow)
                frames = await stream(client, chatflow_id, {"question": "40 + 2?"})
    assert check_invariant(frames) == expected_text(2)
    assert frames[-3].data == [{"tool": "add", "toolInput": {"a": 40, "b": 2}, "toolOutput": "42"}]
    offered = next(r.body for r in stub.records() if r.model == name)["tools"]
    assert sorted(t["function"]["name"] for t in offered) == ["add", "echo"]


async def test_an_mcp_server_on_a_private_address_is_refused_by_default(client: httpx.AsyncClient) -> None:
    config = json.dumps({"url": "http://127.0.0.1:9/mcp"})
    tool = node("customMCP_0", "customMCP", "Tools", {"mcpServerConfig": config, "mcpActions": "add"})
    flow = agent_flow(openai_model("http://127.0.0.1:9/v1"), [tool])
    answer = await client.post("/api/v1/chatflows", json={"name": "x", "flowData": flow})
    assert answer.status_code == 400 and "customMCP_0" in answer.json()["message"]


async def test_a_request_cannot_point_a_chatflow_tool_elsewhere(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    meant = await create_flow(client, fake_flow(tokens=["meant"]), name="meant")
    other = await create_flow(client, fake_flow(tokens=["other"]), name="other")
    name = stub_calls([("ask_other", '{"input": "hi"}')], tokens=1, case="chatflow-override")
    agent = await create_flow(
        client, agent_flow(openai_model(stub.base_url, modelName=name), [chatflow_tool(meant)])
    )
    # Enabled in apiConfig, so that what refuses it is the tool's own protection.
    api_config = overrides_enabled("chatflowTool", "selectedChatflow")
    put = await client.put(f"/api/v1/chatflows/{agent}", json={"apiConfig": api_config})
    assert put.status_code == 200, put.text
    body: dict[str, object] = {"question": "q", "overrideConfig": {"selectedChatflow": other}}
    frames = await stream(client, agent, body)
    assert frames[-3].data[0]["toolOutput"] == "meant"


async def test_a_question_has_a_budget_of_tool_calls(
    client: httpx.AsyncClient, stub: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamwise.nodes.agents import tool_agent

    monkeypatch.setattr(tool_agent, "MAX_TOOL_CALLS", 4)
    three = [("lookup", "{}")] * 3
    name = stub_calls(three, three, tokens=1, case="budget")
    agent = await create_flow(
        client, agent_flow(openai_model(stub.base_url, modelName=name), [fake_tool("t", "lookup")])
    )
    frames = await stream(client, agent, {"question": "q"})
    assert check_invariant(frames) == expected_text(1)
    errors = [used.get("error") for used in frames[-3].data]
    assert errors[:4] == [None] * 4
    assert errors[4:] == ["this question has made 4 tool calls, the most it may"] * 2
