"""customMCP: the tools of an MCP server (Model Context Protocol), for the tool agent.

The node's `mcpServerConfig` is Flowise's JSON: `{"url": ..., "headers": {...}}` for a remote server,
`{"command": ..., "args": [...], "env": {...}}` for a local one (stdio, refused unless the operator
sets STREAMWISE_MCP_ALLOW_STDIO). `mcpActions` lists the tool names the flow's author picked; as in
Flowise, only those are offered, so an empty list offers none.

Everything goes through the official `mcp` client (`mcp_session.open_session`). Like Flowise, a
remote server is tried over streamable HTTP first and over SSE when it answers that with an error;
the transport that worked is remembered with the tool list.

Session lifetime: the tool list is fetched once and kept for `LISTING_TTL_SECONDS` per config in
`services.cache`, and each tool call opens a session of its own and closes it (Flowise does the
same). A connect costs about 50 ms against a local server (initialize + initialized + DELETE), next
to seconds for a model round; in exchange a call owns its whole session in its own task, so a
deadline or an abort closes everything it opened, nothing outlives the run, and no two runs share a
server session (or its state).

Each operation (connect and list, connect and call) gets `ToolPolicy.timeout_seconds` in all.
Failures become `ToolFailure`s naming the node; the server's URL, headers and what it said about the
connection go to `detail` only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
import mcp.types as types
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

from streamwise.engine.tools import TOOL_NAME, ToolContext, ToolFailure, ToolResult, ToolSchema
from streamwise.errors import NodeConfigError
from streamwise.nodes.models.errors import tidy
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec
from streamwise.nodes.tools.mcp_session import (
    HttpServer,
    Server,
    StatusSeen,
    StdioServer,
    Transport,
    leaves,
    open_session,
    url_refusal,
)
from streamwise.nodes.tools.net_guard import AddressRefused

log = logging.getLogger("streamwise.tools.mcp")

LABEL = "Custom MCP"
# How long a server's tool list is reused before it is fetched again.
LISTING_TTL_SECONDS = 60.0
_DESCRIPTION_LIMIT = 1024  # Flowise's default cut for tool descriptions
_ERROR_TEXT_LIMIT = 2000  # of a tool's own error text, passed to the model
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Control characters, zero-width and direction overrides: ways to hide instructions in a description.
_HIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200d\u2028\u2029\u202a-\u202e\u2060\ufeff]")
T = TypeVar("T")


@dataclass(frozen=True)
class _Listed:
    """One tool of the server: the name it calls it by and the schema the model sees."""

    mcp_name: str
    schema: ToolSchema


@dataclass(frozen=True)
class _Listing:
    """A server's tools and the transport that reached it, until `expires` (monotonic seconds)."""

    expires: float
    transport: Transport
    tools: tuple[_Listed, ...]


class McpTool:
    """One tool of an MCP server, as the agent calls it."""

    def __init__(self, source: CustomMcp, listed: _Listed) -> None:
        self._source = source
        self._listed = listed

    @property
    def schema(self) -> ToolSchema:
        return self._listed.schema

    @property
    def side_effects(self) -> bool:
        return True  # an MCP tool may change anything; nothing says it does not

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        name = self._listed.mcp_name

        async def call_tool(session: ClientSession) -> types.CallToolResult:
            # send_request, not call_tool: call_tool lists the tools again on every new session to
            # check structured output against its schema, and only the content is used here.
            request = types.CallToolRequest(
                params=types.CallToolRequestParams(name=name, arguments=dict(arguments))
            )
            return await session.send_request(request, types.CallToolResult)

        result = await self._source.run(call_tool, "call")
        text = _result_text(result, self._source.max_bytes)
        if result.is_error:
            raise ToolFailure(
                f"{self._source.who}: tool {self.schema.name} failed: "
                + (text[:_ERROR_TEXT_LIMIT] or "no reason given"),
                detail=f"MCP server {self._source.server.where}, tool {name!r}",
            )
        return ToolResult(text)


class CustomMcp:
    """One configured customMCP node: a `ToolSource` of the server's tools named in `mcpActions`."""

    def __init__(self, node_id: str, server: Server, actions: Sequence[str], services: NodeServices) -> None:
        self.node_id = node_id
        self.server = server
        self.actions = tuple(actions)
        self.services = services
        self.policy = services.tools
        self.who = f"Node {node_id} ({LABEL})"
        self.max_bytes = services.tools.max_response_bytes
        digest = hashlib.sha256(repr(server).encode()).hexdigest()  # the key holds no header value
        self._cache_key = ("customMCP", digest)

    async def tools(self) -> Sequence[McpTool]:
        listing = await self._listing()
        wanted = set(self.actions)
        chosen = [t for t in listing.tools if t.schema.name in wanted or t.mcp_name in wanted]
        missing = wanted - {name for t in chosen for name in (t.schema.name, t.mcp_name)}
        if missing:
            log.info("%s: the MCP server has no tool named %s", self.who, ", ".join(sorted(missing)))
        return [McpTool(self, listed) for listed in chosen]

    async def _listing(self) -> _Listing:
        cache = self.services.cache
        cached = cache.get(self._cache_key)
        if isinstance(cached, _Listing) and cached.expires > time.monotonic():
            return cached

        async def list_tools(session: ClientSession) -> list[types.Tool]:
            found: list[types.Tool] = []
            cursor: str | None = None
            for _ in range(100):  # pages; a server that never stops paging is cut off
                page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
                found.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            return found

        found, transport = await self._run(list_tools, "list")
        listing = _Listing(time.monotonic() + LISTING_TTL_SECONDS, transport, self._schemas(found))
        now = time.monotonic()
        for key in [k for k, v in cache.items() if isinstance(v, _Listing) and v.expires <= now]:
            del cache[key]
        cache[self._cache_key] = listing
        return listing

    def _schemas(self, found: Sequence[types.Tool]) -> tuple[_Listed, ...]:
        """The listed tools under names a model can call (`TOOL_NAME`); others are renamed, as
        Flowise does (each other character becomes `_`), or left out with a warning."""
        listed: dict[str, _Listed] = {}
        # A tool whose own name is usable keeps it; a renamed one never takes it from it.
        taken = {tool.name for tool in found if TOOL_NAME.match(tool.name)}
        for tool in found:
            name = re.sub(r"[^A-Za-z0-9_-]", "_", tool.name.strip())[:64]
            clash = name in listed or (name != tool.name and name in taken)
            if not TOOL_NAME.match(name) or clash:
                log.warning("%s: left out MCP tool %r: no usable, distinct name", self.who, tool.name[:80])
                continue
            if name != tool.name:
                log.warning("%s: MCP tool %r is offered as %r", self.who, tool.name[:80], name)
            description = _HIDDEN.sub("", tool.description or tool.name)[:_DESCRIPTION_LIMIT]
            parameters = dict(tool.input_schema or {})
            parameters.setdefault("type", "object")
            parameters.setdefault("properties", {})
            listed[name] = _Listed(tool.name, ToolSchema(name, description, parameters))
        return tuple(listed.values())

    async def run(self, operation: Callable[[ClientSession], Awaitable[T]], what: str) -> T:
        """`operation` on a session of its own, over the transport that listed the tools."""
        value, _ = await self._run(operation, what)
        return value

    async def _run(
        self, operation: Callable[[ClientSession], Awaitable[T]], what: str
    ) -> tuple[T, Transport]:
        """Connect (trying streamable HTTP, then SSE, for a server not yet reached), run `operation`
        and close, all within the policy's timeout. Raises `ToolFailure`; a cancellation of the
        calling task comes out as `CancelledError`, never as an exception group."""
        if isinstance(self.server, StdioServer):
            transports: tuple[Transport, ...] = ("stdio",)
        else:
            cached = self.services.cache.get(self._cache_key)
            transports = (cached.transport,) if isinstance(cached, _Listing) else ("http", "sse")
        attempt = _Attempt()
        deadline = asyncio.timeout(self.policy.timeout_seconds)
        try:
            async with deadline:
                for index, transport in enumerate(transports):
                    attempt = _Attempt()
                    try:
                        async with open_session(self.server, transport, self.policy, attempt.seen) as session:
                            attempt.connected = True
                            value = await operation(session)
                        return value, transport
                    except Exception as exc:
                        last = index + 1 == len(transports)
                        if attempt.connected or last or not _answered(exc, attempt.seen):
                            raise
                        log.debug("%s: no streamable HTTP at the MCP server; trying SSE", self.who)
                raise AssertionError("no transport to try")
        except BaseException as exc:
            raise self._failure(exc, deadline.expired(), attempt, what) from None

    def _failure(self, exc: BaseException, timed_out: bool, attempt: _Attempt, what: str) -> BaseException:
        """What to raise for an exception out of a session: the cancellation itself when the task is
        being cancelled, else a `ToolFailure` that names the node and not the server."""
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # The caller is being cancelled (the deadline's own cancel is undone by now): that wins
            # over whatever else went wrong while the session closed.
            return asyncio.CancelledError()
        found = leaves(exc)
        if any(isinstance(leaf, KeyboardInterrupt | SystemExit) for leaf in found):
            return exc
        where = f"MCP server {self.server.where}"
        if timed_out:
            return ToolFailure(
                f"{self.who}: the MCP server did not answer within {self.policy.timeout_seconds:g} s",
                detail=f"{where}: timed out ({what})",
            )
        leaf = next((e for e in found if not isinstance(e, asyncio.CancelledError)), found[0])
        detail = f"{where}: {what}: {tidy(repr(leaf), self.server.secrets, limit=500)}"
        if isinstance(leaf, AddressRefused):
            return ToolFailure(f"{self.who}: the MCP server is refused: {leaf.message}", detail=detail)
        if isinstance(leaf, ToolFailure):  # from net_guard: the host name did not resolve
            return ToolFailure(f"{self.who}: could not reach the MCP server: {leaf.message}", detail=detail)
        status = attempt.seen.status
        if isinstance(leaf, httpx2.HTTPStatusError):
            status = leaf.response.status_code
        if status is not None and isinstance(leaf, MCPError | httpx2.HTTPStatusError):
            happened = "failed" if attempt.connected else "refused the connection"
            return ToolFailure(f"{self.who}: the MCP server {happened} (HTTP {status})", detail=detail)
        if isinstance(leaf, MCPError):
            text = tidy(leaf.error.message, self.server.secrets)
            return ToolFailure(f"{self.who}: the MCP server answered an error: {text}", detail=detail)
        if isinstance(leaf, httpx2.TransportError | OSError | EOFError):
            return ToolFailure(f"{self.who}: could not reach the MCP server", detail=detail)
        log.warning("%s: unexpected failure from the MCP client: %s", self.who, detail)
        return ToolFailure(f"{self.who}: the MCP server could not be used", detail=detail)


@dataclass
class _Attempt:
    """How far one connection attempt got: whether the session opened, which HTTP errors it saw."""

    connected: bool = False
    seen: StatusSeen = field(default_factory=StatusSeen)


def _answered(exc: BaseException, seen: StatusSeen) -> bool:
    """Whether the server answered the streamable HTTP attempt (with an error), so that SSE is worth
    a try; a refused connection or a refused address would fail the same way again."""
    found = leaves(exc)
    if any(isinstance(e, ToolFailure | httpx2.TransportError | OSError) for e in found):
        return False
    return seen.status is not None or any(isinstance(e, MCPError | httpx2.HTTPStatusError) for e in found)


def _result_text(result: types.CallToolResult, max_bytes: int) -> str:
    """A tool result as text for the model: text parts as they are, one per line; other parts
    described in brackets (the model cannot see a picture through a text channel)."""
    parts: list[str] = []
    for item in result.content:
        if isinstance(item, types.TextContent):
            parts.append(item.text)
        elif isinstance(item, types.ImageContent | types.AudioContent):
            size = len(item.data) * 3 // 4
            parts.append(f"[{item.type} {item.mime_type}, about {size} bytes, not shown]")
        elif isinstance(item, types.ResourceLink):
            parts.append(f"[resource {item.name}: {item.uri}]")
        elif isinstance(item, types.EmbeddedResource):
            resource = item.resource
            if isinstance(resource, types.TextResourceContents):
                parts.append(resource.text)
            else:
                parts.append(f"[resource {resource.uri} ({resource.mime_type or 'binary'}), not shown]")
        else:
            parts.append(f"[{getattr(item, 'type', 'content')} content, not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(parts)
    data = text.encode()
    if len(data) > max_bytes:
        text = data[:max_bytes].decode(errors="ignore") + f"\n[cut at {max_bytes} bytes]"
    return text


# ---- building the node ---------------------------------------------------------------------------


def _config(raw: Any, node_id: str) -> Mapping[str, Any]:
    where = f"Node {node_id}: {LABEL}'s MCP Server Config"
    if raw is None or raw == "":
        raise NodeConfigError(f"{where} is required", node_id)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            # The position only: the text itself may hold an API key.
            at = f"line {exc.lineno}, column {exc.colno}"
            raise NodeConfigError(f"{where} is not valid JSON ({exc.msg} at {at})", node_id) from None
    if not isinstance(raw, Mapping):
        raise NodeConfigError(f"{where} must be a JSON object", node_id)
    if _mentions_variables(raw):
        raise NodeConfigError(
            f"{where} uses Flowise variables ({{{{$vars...}}}}); Streamwise has no variable store", node_id
        )
    return raw


def _mentions_variables(value: Any) -> bool:
    """Whether a config uses Flowise's `{{$vars.name}}` placeholders, which need its variable store."""
    if isinstance(value, str):
        return "{{$" in value
    if isinstance(value, Mapping):
        return any(_mentions_variables(k) or _mentions_variables(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_mentions_variables(item) for item in value)
    return False


def _strings(value: Any, what: str, node_id: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise NodeConfigError(f"Node {node_id}: {LABEL}'s {what} must be a JSON object", node_id)
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise NodeConfigError(f"Node {node_id}: {LABEL}'s {what} values must be text", node_id)
        result[str(key)] = str(item)
    return result


def parse_server(raw: Any, node_id: str, services: NodeServices) -> Server:
    """The server a config names, checked against the policy as far as that needs no network."""
    config = _config(raw, node_id)
    policy = services.tools
    has_url, has_command = config.get("url") is not None, config.get("command") is not None
    if has_url == has_command:
        raise NodeConfigError(
            f'Node {node_id}: {LABEL}\'s MCP Server Config needs a "url" or a "command" (one of them)',
            node_id,
        )
    if has_command:
        if not policy.allow_stdio_mcp:
            raise NodeConfigError(
                f"Node {node_id}: {LABEL} may not launch local commands (stdio MCP servers) on this "
                "server; set STREAMWISE_MCP_ALLOW_STDIO=true to allow it",
                node_id,
            )
        command, args = config["command"], config.get("args") or []
        if not isinstance(command, str) or not command.strip():
            raise NodeConfigError(f'Node {node_id}: {LABEL}\'s "command" must be text', node_id)
        if not isinstance(args, list) or not all(isinstance(a, str | int | float) for a in args):
            raise NodeConfigError(f'Node {node_id}: {LABEL}\'s "args" must be a list of text', node_id)
        if config.get("cwd") is not None:
            raise NodeConfigError(f'Node {node_id}: {LABEL}\'s config may not set "cwd"', node_id)
        env = _strings(config.get("env"), '"env"', node_id)
        return StdioServer(command, tuple(str(a) for a in args), tuple(sorted(env.items())))
    url = config["url"]
    if not isinstance(url, str) or not url.strip():
        raise NodeConfigError(f'Node {node_id}: {LABEL}\'s "url" must be text', node_id)
    url = url.strip()
    refusal = url_refusal(url, policy)
    if refusal is not None:
        raise NodeConfigError(f"Node {node_id}: {LABEL}'s MCP server is refused: {refusal}", node_id)
    headers = _strings(config.get("headers"), '"headers"', node_id)
    for name, value in headers.items():
        if not _HEADER_NAME.match(name) or any(c in value for c in "\r\n\0"):
            raise NodeConfigError(f'Node {node_id}: {LABEL}\'s "headers" has an invalid header', node_id)
    return HttpServer(url, tuple(sorted(headers.items())))


def parse_actions(raw: Any, node_id: str) -> list[str]:
    """`mcpActions`: a list of names, or its JSON (how Flowise saves it); plain text is read as
    comma-separated names."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = [part.strip() for part in raw.split(",") if part.strip()]
        if isinstance(raw, str):
            raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise NodeConfigError(
            f'Node {node_id}: {LABEL}\'s "mcpActions" must be a list of tool names', node_id
        )
    return list(raw)


def build(node_id: str, inputs_: Mapping[str, Any], services: NodeServices) -> CustomMcp:
    server = parse_server(inputs_.get("mcpServerConfig"), node_id, services)
    return CustomMcp(node_id, server, parse_actions(inputs_.get("mcpActions"), node_id), services)


SPEC = NodeSpec(
    name="customMCP",
    label=LABEL,
    category="Tools",
    build=build,
    honoured=("mcpServerConfig", "mcpActions"),
    # The config picks which server is reached, with which key, or which command runs; the actions
    # pick which of its tools the model may call. A request may change neither.
    protected=frozenset({"mcpServerConfig", "mcpActions"}),
)
