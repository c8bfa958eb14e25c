"""One MCP session on the official `mcp` client, kept inside the tool policy (used by `mcp_tool`).

What lives here:
- the two kinds of server a customMCP config names (`HttpServer`, `StdioServer`);
- `url_refusal`: the part of the address policy that needs no network (scheme, allowed hosts, a
  host written as an address or `localhost`), for the build-time check;
- `open_session`: an initialised `ClientSession` over streamable HTTP, the older SSE transport, or
  stdio. HTTP goes through `net_guard`'s client, which resolves the host once, refuses it if any
  of its addresses is not public (unless allowed), and connects only to the addresses it vetted.

A session is entered and left in the task that uses it: the `mcp` client runs on anyio task groups,
which must be exited by the task that entered them. Errors come out of those task groups wrapped in
exception groups, possibly nested; `leaves` flattens them for the caller to classify.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

import anyio
import httpx2
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation

import streamwise
from streamwise.nodes.services import ToolPolicy
from streamwise.nodes.tools.net_guard import (
    AddressRefused,
    NetGuard,
    address_kind,
    guarded_client,
    host_allowed,
    literal_address,
)

Transport = Literal["http", "sse", "stdio"]
CLIENT_INFO = Implementation(name="streamwise", version=streamwise.__version__)


class _ClosedStreamNoise(logging.Filter):
    """Drops the traceback the streamable HTTP client logs when a message arrives for a session
    that was just closed (a call that timed out or was cancelled): nothing failed that matters."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, anyio.BrokenResourceError | anyio.ClosedResourceError)


logging.getLogger("mcp.client.streamable_http").addFilter(_ClosedStreamNoise())


@dataclass(frozen=True)
class HttpServer:
    """A remote MCP server: streamable HTTP first, SSE when the server does not speak it."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def where(self) -> str:
        """The URL without user info, query or fragment (which may carry keys): for the log."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            port = ""
        return f"{parts.scheme}://{host}{port}{parts.path}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Header values, and the URL's password and query values (some servers take the key
        there): masked wherever an error's text might echo them."""
        parts = urlsplit(self.url)
        found = [value for _, value in self.headers]
        found += [value for _, value in parse_qsl(parts.query)] + [parts.password or "", parts.query]
        return tuple(value for value in found if len(value) >= 4)


@dataclass(frozen=True)
class StdioServer:
    """A local command that speaks MCP on its stdin and stdout (only with `allow_stdio_mcp`)."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @property
    def where(self) -> str:
        return f"command {self.command!r}"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(value for _, value in self.env if len(value) >= 4)


Server = HttpServer | StdioServer


# ---- the address policy (net_guard has the rules; this is the part that needs no network) ---------

_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_PRIVATE_HINT = "STREAMWISE_HTTP_TOOL_ALLOW_PRIVATE"


def url_refusal(url: str, policy: ToolPolicy) -> str | None:
    """Why the policy refuses this URL before anything is looked up, or None; worded without the URL.

    The scheme, the allowed hosts, and a host that is an address (or `localhost`) are known from
    the text. A host name's addresses are checked when connecting, by `net_guard`.
    """
    try:
        parsed = httpx2.URL(url)
    except (httpx2.InvalidURL, TypeError, ValueError):
        return "its URL is not valid"
    if parsed.scheme not in ("http", "https"):
        return "its URL must start with http:// or https://"
    host = parsed.raw_host.decode("ascii", errors="replace")
    if not host:
        return "its URL has no host"
    try:
        literal = literal_address(host)
    except AddressRefused as exc:
        return exc.message
    if not host_allowed(host, policy.allowed_hosts, literal):
        return "its host is not in the server's list of allowed hosts (STREAMWISE_HTTP_TOOL_ALLOWED_HOSTS)"
    if policy.allow_private_network:
        return None
    name = host.lower().rstrip(".")
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return f"its host is this machine, which the server's settings do not allow ({_PRIVATE_HINT})"
    kind = address_kind(literal) if literal is not None else None
    if kind is not None:
        return f"its address is {kind}, which the server's settings do not allow ({_PRIVATE_HINT})"
    return None


@dataclass
class StatusSeen:
    """The last HTTP error status a session's requests got: the streamable HTTP client turns a 401
    into a generic JSON-RPC error, and the status is what tells a bad key from a wrong path."""

    status: int | None = None

    async def hook(self, response: httpx2.Response) -> None:
        if response.status_code >= 400:
            self.status = response.status_code


def _http_client(
    policy: ToolPolicy, headers: Mapping[str, str] | None, timeout: httpx2.Timeout | None, seen: StatusSeen
) -> httpx2.AsyncClient:
    """A client that reaches only what the policy allows: one `NetGuard` per session, so the host
    is resolved and vetted once and every connection of the session goes to those addresses."""
    return guarded_client(
        NetGuard(policy),
        headers=dict(headers or {}),
        timeout=timeout or httpx2.Timeout(policy.timeout_seconds),
        event_hooks={"response": [seen.hook]},
    )


# ---- sessions ------------------------------------------------------------------------------------


@asynccontextmanager
async def open_session(
    server: Server, transport: Transport, policy: ToolPolicy, seen: StatusSeen
) -> AsyncIterator[ClientSession]:
    """An initialised session to `server` over `transport`. Leave it in the task that entered it."""
    async with AsyncExitStack() as stack:
        if isinstance(server, StdioServer):
            parameters = StdioServerParameters(
                command=server.command, args=list(server.args), env=dict(server.env) or None
            )
            read, write = await stack.enter_async_context(stdio_client(parameters))
        elif transport == "sse":

            def factory(
                headers: dict[str, str] | None = None,
                timeout: httpx2.Timeout | None = None,
                auth: httpx2.Auth | None = None,
            ) -> httpx2.AsyncClient:
                return _http_client(policy, headers, timeout, seen)

            read, write = await stack.enter_async_context(
                sse_client(
                    server.url,
                    headers=dict(server.headers),
                    timeout=policy.timeout_seconds,
                    sse_read_timeout=policy.timeout_seconds,
                    httpx_client_factory=factory,
                )
            )
        else:
            client = await stack.enter_async_context(_http_client(policy, dict(server.headers), None, seen))
            read, write = await stack.enter_async_context(
                streamable_http_client(server.url, http_client=client)
            )
        session = await stack.enter_async_context(ClientSession(read, write, client_info=CLIENT_INFO))
        await session.initialize()
        yield session


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, in order; the exception itself otherwise."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]
