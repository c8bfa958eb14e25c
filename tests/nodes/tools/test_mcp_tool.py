"""customMCP against a real MCP server (the official `mcp` package's MCPServer, on 127.0.0.1), over
streamable HTTP, SSE and stdio: listing, calling, failures, deadlines, cancellation, the policy."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest

from streamwise.engine.ports import ChatTurn, SessionContext
from streamwise.engine.tools import TOOL_NAME, Tool, ToolContext, ToolFailure, ToolSource
from streamwise.errors import NodeConfigError
from streamwise.nodes.services import NodeServices, ToolPolicy
from streamwise.nodes.tools import mcp_session, net_guard
from streamwise.nodes.tools.mcp_tool import SPEC, CustomMcp, McpTool, _Listing, _result_text, build
from tests.support.mcp_server import McpServer, serve_in_subprocess
from tests.support.waiting import until

SECRET = "Bearer s3cret-token-42"
SERVER_SCRIPT = Path(__file__).resolve().parents[2] / "support" / "mcp_server.py"


class _NoHistory:
    async def history(self, chatflow_id: str, session_id: str, *, limit: int | None = None) -> list[ChatTurn]:
        return []


CONTEXT = ToolContext(session=SessionContext("flow", "chat", "session", _NoHistory()))


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[McpServer]:
    with serve_in_subprocess() as server:
        yield server


def _services(**policy: Any) -> NodeServices:
    settings: dict[str, Any] = {"allow_private_network": True, "timeout_seconds": 10.0, **policy}
    return NodeServices(env={}, tools=ToolPolicy(**settings))


@pytest.fixture
async def services() -> AsyncIterator[NodeServices]:
    node_services = _services()
    yield node_services
    await node_services.aclose()


def _node(services: NodeServices, config: Any, actions: Any = ("add", "echo")) -> CustomMcp:
    inputs: dict[str, Any] = {"mcpServerConfig": config}
    if actions is not None:
        inputs["mcpActions"] = list(actions) if isinstance(actions, tuple) else actions
    return build("customMCP_0", inputs, services)


async def _tools(source: CustomMcp) -> dict[str, McpTool]:
    return {tool.schema.name: tool for tool in await source.tools()}


def _silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a server that hangs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    yield from _silent_port()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: a server that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- listing and calling -------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_lists_and_calls_tools(mcp_server: McpServer, services: NodeServices, transport: str) -> None:
    url = mcp_server.http_url if transport == "http" else mcp_server.sse_url
    source = _node(services, f'{{"url": "{url}"}}', '["add", "echo"]')
    assert isinstance(source, ToolSource)

    tools = await _tools(source)

    assert list(tools) == ["add", "echo"]
    add = tools["add"]
    assert isinstance(add, Tool)
    assert add.side_effects is True
    assert add.schema.description == "Add two integers."
    assert add.schema.parameters["type"] == "object"
    assert set(add.schema.parameters["properties"]) == {"a", "b"}
    assert add.schema.parameters["required"] == ["a", "b"]
    assert (await add.call({"a": 2, "b": 3}, CONTEXT)).output == "5"
    assert (await tools["echo"].call({"text": "hello there"}, CONTEXT)).output == "hello there"
    listing = services.cache[source._cache_key]
    assert isinstance(listing, _Listing)
    # Streamable HTTP first, as Flowise does; a server that answers it with an error gets SSE.
    assert listing.transport == transport


async def test_the_tool_list_is_fetched_once_and_reused(
    mcp_server: McpServer, services: NodeServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real = mcp_session.open_session

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr("streamwise.nodes.tools.mcp_tool.open_session", counting)
    config = {"url": mcp_server.http_url}

    await _node(services, config).tools()
    tools = await _node(services, config, ("add",)).tools()  # another run of the same flow
    assert opened == ["http"]

    await tools[0].call({"a": 1, "b": 1}, CONTEXT)
    assert opened == ["http", "http"]  # a session per call


async def test_mcp_actions_pick_the_tools_and_none_means_none(
    mcp_server: McpServer, services: NodeServices
) -> None:
    config = {"url": mcp_server.http_url}

    assert list(await _tools(_node(services, config, ["echo"]))) == ["echo"]
    assert list(await _tools(_node(services, config, "add, echo"))) == ["add", "echo"]
    # As in Flowise: only the selected actions are offered, so selecting none offers none.
    assert await _node(services, config, None).tools() == []
    assert await _node(services, config, "[]").tools() == []
    assert await _node(services, config, ["no_such_tool"]).tools() == []


async def test_a_name_a_model_cannot_call_is_renamed(mcp_server: McpServer, services: NodeServices) -> None:
    tools = await _tools(_node(services, {"url": mcp_server.http_url}, ["dotted_name"]))

    assert list(tools) == ["dotted_name"]  # the server calls it "dotted.name"
    assert (await tools["dotted_name"].call({}, CONTEXT)).output == "dotted ok"


def test_names_are_made_callable_and_descriptions_cleaned() -> None:
    source = build("customMCP_0", {"mcpServerConfig": {"url": "https://mcp.example.com/mcp"}}, _services())
    found = [
        types.Tool(name="read file", description="Reads\u200b a file\x07.", input_schema={"type": "object"}),
        types.Tool(name="read_file", input_schema={"type": "object"}),  # the same name, once renamed
        types.Tool(name="x" * 80, input_schema={}),
        types.Tool(name="...", input_schema={"type": "object"}),
        types.Tool(name="", input_schema={"type": "object"}),
    ]

    listed = source._schemas(found)

    assert [t.schema.name for t in listed] == ["read_file", "x" * 64, "___"]
    assert all(TOOL_NAME.match(t.schema.name) for t in listed)
    assert listed[0].mcp_name == "read_file"  # the tool with that very name keeps it
    assert listed[1].schema.description == "x" * 80  # no description: the name, as in Flowise
    assert listed[1].schema.parameters == {"type": "object", "properties": {}}
    cleaned = source._schemas(found[:1])[0]
    assert (cleaned.mcp_name, cleaned.schema.name) == ("read file", "read_file")
    assert cleaned.schema.description == "Reads a file."


# ---- results -------------------------------------------------------------------------------------


async def test_other_content_is_described(mcp_server: McpServer, services: NodeServices) -> None:
    tools = await _tools(_node(services, {"url": mcp_server.http_url}, ["picture"]))

    output = (await tools["picture"].call({}, CONTEXT)).output

    assert output == "here it is\n[image image/png, about 9 bytes, not shown]"


def test_result_text_for_every_kind_of_content() -> None:
    result = types.CallToolResult(
        content=[
            types.TextContent(type="text", text="one"),
            types.EmbeddedResource(
                type="resource", resource=types.TextResourceContents(uri="file:///a.txt", text="inside")
            ),
            types.EmbeddedResource(
                type="resource",
                resource=types.BlobResourceContents(uri="file:///b.bin", blob="AAAA", mime_type="x/y"),
            ),
            types.ResourceLink(type="resource_link", name="c", uri="file:///c"),
            types.AudioContent(type="audio", data="AAAAAAAA", mime_type="audio/wav"),
        ]
    )
    assert _result_text(result, 1000).splitlines() == [
        "one",
        "inside",
        "[resource file:///b.bin (x/y), not shown]",
        "[resource c: file:///c]",
        "[audio audio/wav, about 6 bytes, not shown]",
    ]
    structured = types.CallToolResult(content=[], structured_content={"n": 1})
    assert _result_text(structured, 1000) == '{"n": 1}'
    long = types.CallToolResult(content=[types.TextContent(type="text", text="é" * 100)])
    assert _result_text(long, 11) == "é" * 5 + "\n[cut at 11 bytes]"


# ---- failures ------------------------------------------------------------------------------------


async def test_a_tool_error_is_a_tool_failure_with_its_text(
    mcp_server: McpServer, services: NodeServices
) -> None:
    tools = await _tools(_node(services, {"url": mcp_server.http_url}, ["fail"]))

    with pytest.raises(ToolFailure) as caught:
        await tools["fail"].call({"reason": "no fuel"}, CONTEXT)

    assert type(caught.value) is ToolFailure
    assert caught.value.message.startswith("Node customMCP_0 (Custom MCP): tool fail failed: ")
    assert "it broke: no fuel" in caught.value.message
    assert mcp_server.base_url not in caught.value.message


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_a_slow_tool_hits_the_timeout(mcp_server: McpServer, transport: str) -> None:
    services = _services(timeout_seconds=1.0)
    url = mcp_server.http_url if transport == "http" else mcp_server.sse_url
    tools = await _tools(_node(services, {"url": url}, ["slow"]))
    started = time.monotonic()

    with pytest.raises(ToolFailure) as caught:
        await tools["slow"].call({"seconds": 30}, CONTEXT)

    assert time.monotonic() - started < 3
    assert type(caught.value) is ToolFailure  # never an exception group
    assert caught.value.message == "Node customMCP_0 (Custom MCP): the MCP server did not answer within 1 s"
    await services.aclose()


async def test_a_server_that_is_down(closed_port: int) -> None:
    services = _services(timeout_seconds=5.0)
    url = f"http://127.0.0.1:{closed_port}/mcp"
    source = _node(services, {"url": f"{url}?api_key=query-secret", "headers": {"Authorization": SECRET}})
    started = time.monotonic()

    with pytest.raises(ToolFailure) as caught:
        await source.tools()

    assert time.monotonic() - started < 3  # no need to wait for the deadline, nor to try SSE
    assert type(caught.value) is ToolFailure
    assert caught.value.message == "Node customMCP_0 (Custom MCP): could not reach the MCP server"
    assert caught.value.detail is not None and url in caught.value.detail  # for the log
    assert SECRET not in caught.value.detail
    assert "query-secret" not in caught.value.detail


async def test_a_server_that_never_answers_is_bounded(silent_port: int) -> None:
    services = _services(timeout_seconds=1.0)
    started = time.monotonic()

    with pytest.raises(ToolFailure) as caught:
        await _node(services, {"url": f"http://127.0.0.1:{silent_port}/mcp"}).tools()

    assert time.monotonic() - started < 3
    assert "did not answer within 1 s" in caught.value.message
    assert str(silent_port) not in caught.value.message


async def test_an_http_error_status_is_named(mcp_server: McpServer, services: NodeServices) -> None:
    source = _node(services, {"url": f"{mcp_server.base_url}/locked/mcp", "headers": {"X-Key": "wrong-key"}})

    with pytest.raises(ToolFailure) as caught:
        await source.tools()

    assert (
        caught.value.message
        == "Node customMCP_0 (Custom MCP): the MCP server refused the connection (HTTP 401)"
    )


async def test_headers_are_sent(mcp_server: McpServer, services: NodeServices) -> None:
    for url in (mcp_server.http_url, mcp_server.sse_url):
        tools = await _tools(_node(services, {"url": url, "headers": {"Authorization": SECRET}}, ["whoami"]))
        assert (await tools["whoami"].call({}, CONTEXT)).output == SECRET


async def test_headers_are_never_shown_or_logged(
    mcp_server: McpServer, services: NodeServices, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the mcp client and httpcore log a lot at this level
    headers = {"Authorization": SECRET}
    tools = await _tools(_node(services, {"url": mcp_server.http_url, "headers": headers}, ["fail"]))
    failures: list[ToolFailure] = []
    with pytest.raises(ToolFailure) as caught:
        await tools["fail"].call({"reason": "x"}, CONTEXT)
    failures.append(caught.value)
    with pytest.raises(ToolFailure) as caught:
        await _node(services, {"url": f"http://127.0.0.1:{closed_port}/mcp", "headers": headers}).tools()
    failures.append(caught.value)
    for locked in (
        f"{mcp_server.base_url}/locked/mcp?key=query-secret",
        f"{mcp_server.base_url}/locked/sse",
    ):
        with pytest.raises(ToolFailure) as caught:
            await _node(services, {"url": locked, "headers": headers}).tools()
        failures.append(caught.value)

    for failure in failures:
        for secret in ("s3cret", "query-secret"):
            assert secret not in failure.message
            assert secret not in (failure.detail or "")
    # httpx2 itself logs request URLs, query included, so only the headers are checked here.
    assert "s3cret" not in caplog.text
    assert "s3cret" not in repr(services.cache)


# ---- cancellation --------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_cancelling_a_call_returns_promptly_and_leaves_no_task(
    mcp_server: McpServer, services: NodeServices, transport: str
) -> None:
    url = mcp_server.http_url if transport == "http" else mcp_server.sse_url
    tools = await _tools(_node(services, {"url": url}, ["slow"]))
    before = asyncio.all_tasks()
    call = asyncio.create_task(tools["slow"].call({"seconds": 30}, CONTEXT))
    await asyncio.sleep(0.5)  # connected, and the server is sleeping
    assert not call.done()
    started = time.monotonic()

    call.cancel()
    with pytest.raises(asyncio.CancelledError):  # the cancellation itself, not an exception group
        await asyncio.wait_for(call, 5)

    assert time.monotonic() - started < 1
    await until(lambda: asyncio.all_tasks() <= before, within=2)


async def test_an_outer_deadline_like_the_agents_comes_out_as_a_timeout(mcp_server: McpServer) -> None:
    services = _services(timeout_seconds=1.0)
    tools = await _tools(_node(services, {"url": mcp_server.http_url}, ["slow"]))

    # The agent bounds each call with the same timeout, entered just before this one's.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):
            await tools["slow"].call({"seconds": 30}, CONTEXT)


async def test_cancelling_while_connecting_returns_promptly(silent_port: int) -> None:
    services = _services(timeout_seconds=30.0)
    listing = asyncio.create_task(_node(services, {"url": f"http://127.0.0.1:{silent_port}/mcp"}).tools())
    await asyncio.sleep(0.3)
    started = time.monotonic()

    listing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(listing, 5)

    assert time.monotonic() - started < 1


# ---- stdio ---------------------------------------------------------------------------------------


def _stdio_config() -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(SERVER_SCRIPT), "--stdio"], "env": {"MCP_TEST": "1"}}


def test_stdio_is_refused_by_default() -> None:
    with pytest.raises(NodeConfigError) as caught:
        _node(_services(), _stdio_config())

    assert caught.value.node_id == "customMCP_0"
    assert "STREAMWISE_MCP_ALLOW_STDIO" in caught.value.message


def _server_children() -> list[int]:
    """The stdio test servers this process started and that still run (from /proc: Linux)."""
    script = str(SERVER_SCRIPT).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if parent == os.getpid() and script in cmdline and b"--stdio" in cmdline:
            found.append(int(entry.name))
    return found


async def test_stdio_when_allowed() -> None:
    services = _services(allow_stdio_mcp=True, timeout_seconds=30.0)
    tools = await _tools(_node(services, _stdio_config(), ["add", "slow"]))

    assert list(tools) == ["add", "slow"]
    assert (await tools["add"].call({"a": 20, "b": 22}, CONTEXT)).output == "42"

    call = asyncio.create_task(tools["slow"].call({"seconds": 30}, CONTEXT))
    await until(lambda: bool(_server_children()), within=20, every=0.05)
    await asyncio.sleep(0.5)
    started = time.monotonic()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(call, 10)
    assert time.monotonic() - started < 5  # the process is asked to stop, then killed
    await until(lambda: not _server_children(), within=5, every=0.05)


def test_stdio_config_is_checked() -> None:
    services = _services(allow_stdio_mcp=True)
    for config in (
        {"command": ""},
        {"command": "node", "args": "server.js"},
        {"command": "node", "cwd": "/"},
        {"command": "node", "env": {"A": ["b"]}},
    ):
        with pytest.raises(NodeConfigError):
            _node(services, config)


# ---- the address policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/mcp",
        "http://localhost:9/mcp",
        "http://[::1]:9/mcp",
        "http://169.254.169.254/latest",
        "http://10.1.2.3/mcp",
        "http://2130706433/mcp",  # 127.0.0.1 as one number
        "http://[::ffff:127.0.0.1]/mcp",
    ],
)
def test_a_private_url_is_refused_at_build(url: str) -> None:
    with pytest.raises(NodeConfigError) as caught:
        _node(_services(allow_private_network=False), {"url": url})

    assert caught.value.node_id == "customMCP_0"
    assert "STREAMWISE_HTTP_TOOL_ALLOW_PRIVATE" in caught.value.message
    assert url not in caught.value.message


async def test_a_name_that_resolves_to_a_private_address_is_refused_when_connecting(
    mcp_server: McpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        net_guard, "system_resolve", net_guard.mapping_resolver({"mcp.example.com": ["127.0.0.1"]})
    )
    services = _services(allow_private_network=False)
    port = mcp_server.base_url.rsplit(":", 1)[1]
    source = _node(services, {"url": f"http://mcp.example.com:{port}/mcp"})  # nothing to refuse yet

    with pytest.raises(ToolFailure) as caught:
        await source.tools()

    assert caught.value.message.startswith("Node customMCP_0 (Custom MCP): the MCP server is refused: ")
    assert "loopback" in caught.value.message
    assert "127.0.0.1" not in caught.value.message and "example.com" not in caught.value.message


def test_allowed_hosts_are_enforced_at_build() -> None:
    services = _services(allowed_hosts=("mcp.example.com", "*.tools.example.org"))

    _node(services, {"url": "https://mcp.example.com/mcp"})
    _node(services, {"url": "https://a.tools.example.org/mcp"})
    with pytest.raises(NodeConfigError) as caught:
        _node(services, {"url": "https://other.example.com/mcp"})
    assert "allowed hosts" in caught.value.message


# ---- the config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "says"),
    [
        (None, "is required"),
        ("", "is required"),
        (
            '{"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer xyz"',
            "not valid JSON",
        ),
        ("[1, 2]", "must be a JSON object"),
        ("{}", 'needs a "url" or a "command"'),
        ({"url": "https://a.example.com", "command": "node"}, 'needs a "url" or a "command"'),
        ({"url": 5}, '"url" must be text'),
        ({"url": "ftp://mcp.example.com/"}, "http:// or https://"),
        ({"url": "https:///mcp"}, "no host"),
        ({"url": "https://mcp.example.com/mcp", "headers": ["a"]}, '"headers" must be a JSON object'),
        ({"url": "https://mcp.example.com/mcp", "headers": {"A": "b\r\nC: d"}}, "invalid header"),
        ({"url": "https://mcp.example.com/mcp", "headers": {"Bad Name": "x"}}, "invalid header"),
        ({"url": "https://mcp.example.com/mcp", "headers": {"A": "{{$vars.key}}"}}, "Flowise variables"),
    ],
)
def test_a_malformed_config_is_refused_at_build(config: Any, says: str) -> None:
    with pytest.raises(NodeConfigError) as caught:
        _node(_services(), config)

    assert caught.value.node_id == "customMCP_0"
    assert caught.value.message.startswith("Node customMCP_0: Custom MCP")
    assert says in caught.value.message
    assert "xyz" not in caught.value.message  # the config's text is never echoed


@pytest.mark.parametrize("actions", [5, {"a": 1}, [1, 2], '{"a": 1}'])
def test_malformed_actions_are_refused_at_build(actions: Any) -> None:
    with pytest.raises(NodeConfigError):
        _node(_services(), {"url": "https://mcp.example.com/mcp"}, actions)


def test_the_spec() -> None:
    assert SPEC.name == "customMCP"
    assert SPEC.category == "Tools"
    assert set(SPEC.honoured) == {"mcpServerConfig", "mcpActions"}
    assert {"mcpServerConfig", "mcpActions"} <= SPEC.not_overridable
