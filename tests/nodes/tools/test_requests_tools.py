"""requestsGet / requestsPost against a real local server: answers, limits, redirects and refusals.

The server listens on 127.0.0.1, so the tests that should reach it allow private addresses for
127.0.0.1 alone; names resolve through an injected table, never real DNS.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from streamwise.engine.ports import ChatTurn, SessionContext
from streamwise.engine.tools import Tool, ToolContext, ToolFailure
from streamwise.errors import NodeConfigError
from streamwise.nodes.services import NodeServices, ToolPolicy
from streamwise.nodes.tools import requests_tools
from streamwise.nodes.tools.net_guard import mapping_resolver
from streamwise.nodes.tools.requests_tools import GET_SPEC, POST_SPEC, HttpRequestTool
from tests.nodes.tools.forwarding import Forwarding

LOCAL = ToolPolicy(allowed_hosts=("127.0.0.1",), allow_private_network=True, timeout_seconds=10)


class _NoHistory:
    async def history(self, chatflow_id: str, session_id: str, *, limit: int | None = None) -> list[ChatTurn]:
        return []


def context() -> ToolContext:
    return ToolContext(session=SessionContext("flow", "chat", "session", _NoHistory()))


@pytest.fixture
async def server() -> AsyncIterator[int]:
    stop = asyncio.Event()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello world")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": await request.text(),
            }
        )

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(200):
            await response.write(b"a" * 10_000)
        return response

    async def compressed(request: web.Request) -> web.Response:
        body = gzip.compress(b"z" * 5_000_000)
        return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    async def latin1(request: web.Request) -> web.Response:
        return web.Response(body="café".encode("latin-1"), content_type="text/plain", charset="iso-8859-1")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(stop.wait(), 10)
        return web.Response(text="late")

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="details the model does not get")

    async def redirect(request: web.Request) -> web.Response:
        code = int(request.query.get("code", "302"))
        return web.Response(status=code, headers={"Location": request.query["to"]})

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/items/{id}", echo)
    app.router.add_get("/big", big)
    app.router.add_get("/gzip", compressed)
    app.router.add_get("/latin1", latin1)
    app.router.add_get("/slow", slow)
    app.router.add_get("/status/{code}", status)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_get("/loop", loop)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield int(runner.addresses[0][1])
    stop.set()
    await runner.cleanup()


def get_tool(inputs: dict[str, Any], policy: ToolPolicy = LOCAL) -> HttpRequestTool:
    tool = GET_SPEC.build("requestsGet_0", inputs, NodeServices(env={}, tools=policy))
    assert isinstance(tool, HttpRequestTool) and isinstance(tool, Tool)
    return tool


def post_tool(inputs: dict[str, Any], policy: ToolPolicy = LOCAL) -> HttpRequestTool:
    tool = POST_SPEC.build("requestsPost_0", inputs, NodeServices(env={}, tools=policy))
    assert isinstance(tool, HttpRequestTool)
    return tool


async def test_a_fixed_url_is_fetched_and_the_model_gives_only_query_params(server: int) -> None:
    tool = get_tool({"requestsGetUrl": f"http://127.0.0.1:{server}/hello"})
    assert tool.schema.name == "requests_get"
    assert set(tool.schema.parameters["properties"]) == {"queryParams"}
    assert tool.side_effects is False
    result = await tool.call({}, context())
    assert result.output == "hello world"


async def test_flowise_1_nodes_without_a_url_let_the_model_give_it(server: int) -> None:
    tool = get_tool({"url": "", "description": "Fetch pages", "headers": ""})
    assert tool.schema.parameters["required"] == ["url"]
    assert tool.schema.description == "Fetch pages"
    result = await tool.call({"url": f"http://127.0.0.1:{server}/hello"}, context())
    assert result.output == "hello world"


async def test_query_and_path_params_follow_the_schema(server: int) -> None:
    schema = {
        "id": {"type": "string", "in": "path", "required": True, "description": "item id"},
        "limit": {"type": "number", "in": "query"},
    }
    tool = get_tool(
        {
            "requestsGetUrl": f"http://127.0.0.1:{server}/items/:id",
            "requestsGetQueryParamsSchema": json.dumps(schema),
            "requestsGetHeaders": '{"Authorization": "Bearer t0ken", "X-Team": "a",}',
            "requestsGetName": "Item Lookup!",
        }
    )
    assert tool.schema.name == "item_lookup"
    query_schema = tool.schema.parameters["properties"]["queryParams"]
    assert query_schema["required"] == ["id"]
    assert query_schema["properties"]["limit"]["type"] == "number"
    result = await tool.call({"queryParams": {"id": "a/b", "limit": 10, "other": "x"}}, context())
    echoed = json.loads(result.output)
    assert echoed["path"] == "/items/a/b" or echoed["path"] == "/items/a%2Fb"
    assert echoed["query"] == {"limit": "10"}  # "other" is not in the schema
    assert echoed["headers"]["Authorization"] == "Bearer t0ken"


async def test_post_sends_json_with_the_node_body_winning(server: int) -> None:
    tool = post_tool(
        {
            "requestsPostUrl": f"<p>http://127.0.0.1:{server}/echo</p>",
            "requestPostBody": '{"account": "fixed"}',
            "requestsPostBodySchema": '{"title": {"type": "string", "required": true}}',
        }
    )
    assert tool.side_effects is True
    assert tool.schema.parameters["required"] == ["body"]
    result = await tool.call({"body": {"title": "hi", "account": "stolen"}}, context())
    echoed = json.loads(result.output)
    assert echoed["method"] == "POST"
    assert echoed["headers"]["Content-Type"] == "application/json"
    assert json.loads(echoed["body"]) == {"title": "hi", "account": "fixed"}


async def test_post_of_flowise_1_takes_url_and_data_from_the_model(server: int) -> None:
    tool = post_tool({"url": "", "body": ""})
    result = await tool.call({"url": f"http://127.0.0.1:{server}/echo", "data": {"n": 1}}, context())
    assert json.loads(json.loads(result.output)["body"]) == {"n": 1}


async def test_default_settings_refuse_the_local_server(server: int) -> None:
    tool = get_tool({"requestsGetUrl": f"http://127.0.0.1:{server}/hello"}, ToolPolicy())
    with pytest.raises(ToolFailure) as refused:
        await tool.call({}, context())
    assert refused.value.message == (
        "Failed to make GET request: the address of that host is loopback; "
        "the server's settings do not allow it"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433:{port}/hello",
        "http://0x7f.1:{port}/hello",
        "http://0177.0.0.1:{port}/hello",
        "http://[::ffff:127.0.0.1]:{port}/hello",
        "http://127.1:{port}/hello",
        "http://good.com@127.0.0.1:{port}/hello",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
    ],
)
async def test_numeric_and_disguised_hosts_are_refused(server: int, url: str) -> None:
    tool = get_tool({}, ToolPolicy())
    with pytest.raises(ToolFailure, match=r"^Failed to make GET request: "):
        await tool.call({"url": url.format(port=server)}, context())


async def test_another_spelling_of_an_allowed_address_is_allowed(server: int) -> None:
    tool = get_tool({"requestsGetUrl": f"http://127.1:{server}/hello"})
    assert (await tool.call({}, context())).output == "hello world"


async def test_redirects_are_followed_and_a_303_turns_a_post_into_a_get(server: int) -> None:
    tool = get_tool({"requestsGetUrl": f"http://127.0.0.1:{server}/redirect?to=/hello"})
    assert (await tool.call({}, context())).output == "hello world"
    post = post_tool({"requestsPostUrl": f"http://127.0.0.1:{server}/redirect?code=303&to=/echo"})
    echoed = json.loads((await post.call({"body": {"a": 1}}, context())).output)
    assert (echoed["method"], echoed["body"]) == ("GET", "")


async def test_a_redirect_to_a_host_outside_the_list_is_refused(server: int) -> None:
    url = f"http://127.0.0.1:{server}/redirect?to=http://169.254.169.254/latest/meta-data/"
    tool = get_tool({"requestsGetUrl": url})
    with pytest.raises(ToolFailure, match="a redirect was refused: that host is not in the server's list"):
        await tool.call({}, context())


async def test_a_redirect_from_a_public_host_into_the_private_network_is_refused(server: int) -> None:
    tool = get_tool({}, ToolPolicy())
    tool.resolve = mapping_resolver({"public.test": ["93.184.216.34"], "inner.test": ["10.0.0.7"]})
    internet = Forwarding(server)
    tool.backend = internet
    for target in (f"http://127.0.0.1:{server}/hello", f"http://inner.test:{server}/hello"):
        url = f"http://public.test:{server}/redirect?to={target}"
        with pytest.raises(ToolFailure, match="a redirect was refused: the address of that host is"):
            await tool.call({"url": url}, context())
    assert internet.seen == ["93.184.216.34", "93.184.216.34"]  # the refused hops were never dialled


async def test_credentials_do_not_follow_a_redirect_to_another_origin(server: int) -> None:
    policy = ToolPolicy(allow_private_network=True)
    tool = get_tool(
        {
            "requestsGetUrl": f"http://a.test:{server}/redirect?to=http://b.test:{server}/echo",
            "requestsGetHeaders": {"Authorization": "Bearer secret", "X-Trace": "1"},
        },
        policy,
    )
    tool.resolve = mapping_resolver({"a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"]})
    headers = json.loads((await tool.call({}, context())).output)["headers"]
    assert "Authorization" not in headers
    assert headers["X-Trace"] == "1"
    assert headers["Host"] == f"b.test:{server}"


async def test_endless_redirects_stop(server: int) -> None:
    tool = get_tool({"requestsGetUrl": f"http://127.0.0.1:{server}/loop"})
    with pytest.raises(ToolFailure, match="more than 5 redirects"):
        await tool.call({}, context())


async def test_answers_are_cut_at_the_byte_limit(server: int) -> None:
    policy = ToolPolicy(allowed_hosts=("127.0.0.1",), allow_private_network=True, max_response_bytes=1000)
    big = get_tool({"requestsGetUrl": f"http://127.0.0.1:{server}/big"}, policy)
    assert (await big.call({}, context())).output == "a" * 1000
    bomb = get_tool({"requestsGetUrl": f"http://127.0.0.1:{server}/gzip"}, policy)
    assert (await bomb.call({}, context())).output == "z" * 1000


async def test_max_output_length_cuts_the_text(server: int) -> None:
    url = f"http://127.0.0.1:{server}/hello"
    tool = get_tool({"requestsGetUrl": url, "maxOutputLength": "", "requestsGetMaxOutputLength": "5"})
    assert (await tool.call({}, context())).output == "hello"


async def test_the_charset_of_the_answer_is_used(server: int) -> None:
    tool = get_tool({"requestsGetUrl": f"http://127.0.0.1:{server}/latin1"})
    assert (await tool.call({}, context())).output == "café"


async def test_an_error_status_is_a_failure_naming_it(server: int) -> None:
    tool = get_tool({"requestsGetUrl": f"http://127.0.0.1:{server}/status/404"})
    with pytest.raises(ToolFailure) as failed:
        await tool.call({}, context())
    assert failed.value.message == "Failed to make GET request: HTTP Error 404: Not Found"


async def test_a_slow_server_runs_into_the_timeout(server: int) -> None:
    policy = ToolPolicy(allowed_hosts=("127.0.0.1",), allow_private_network=True, timeout_seconds=0.5)
    tool = get_tool({"requestsGetUrl": f"http://127.0.0.1:{server}/slow"}, policy)
    started = time.monotonic()
    with pytest.raises(ToolFailure, match=r"no complete answer within 0\.5 seconds"):
        await tool.call({}, context())
    assert time.monotonic() - started < 5


async def test_nobody_listening_is_a_failure() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, and nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tool = get_tool({"requestsGetUrl": f"http://127.0.0.1:{port}/"})
    with pytest.raises(ToolFailure, match="could not connect"):
        await tool.call({}, context())


@pytest.mark.parametrize(
    "inputs",
    [
        {"requestsGetUrl": "ftp://example.com/file"},
        {"requestsGetHeaders": "{not json"},
        {"requestsGetHeaders": '["a"]'},
        {"requestsGetHeaders": '{"Bad Header": "x"}'},
        {"requestsGetHeaders": '{"X-A": "a\\r\\nInjected: 1"}'},
        {"requestsGetMaxOutputLength": "0"},
        {"requestsGetQueryParamsSchema": '{"id": "string"}'},
    ],
)
def test_unusable_inputs_are_refused_when_the_flow_is_saved(inputs: dict[str, Any]) -> None:
    with pytest.raises(NodeConfigError, match="requestsGet_0"):
        get_tool(inputs)


def test_both_nodes_are_declared() -> None:
    assert [spec.name for spec in requests_tools.SPECS] == ["requestsGet", "requestsPost"]
    assert "requestsGetUrl" in GET_SPEC.not_overridable
    assert "requestPostBody" in POST_SPEC.not_overridable
