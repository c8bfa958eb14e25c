"""A real MCP server for the customMCP tests, built with the official `mcp` package (its MCPServer).

One process serves both HTTP transports on one loopback port: streamable HTTP at `/mcp` and the older
SSE transport at `/sse` (messages posted to `/messages/`). `--stdio` serves the same tools over
stdin/stdout instead, for the stdio tests. The file imports nothing from this repository, so it also
runs as a plain script (`python tests/support/mcp_server.py --stdio`).

`serve_in_subprocess` starts it on a free port, waits (bounded) until it accepts connections, and
stops it by its own pid on leaving. A subprocess, not a thread: the slow tool then sleeps in another
interpreter, and "the server went away" is one `kill`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ImageContent, TextContent
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SERVER_NAME = "streamwise-test"


def make_server() -> MCPServer:
    server = MCPServer(SERVER_NAME, log_level="WARNING")

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Say the text back.")
    def echo(text: str) -> str:
        return text

    @server.tool(description="Wait, then answer.")
    async def slow(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    @server.tool(description="Always fails.")
    def fail(reason: str) -> str:
        raise ToolError(f"it broke: {reason}")

    @server.tool(description="What Authorization header the request carried.")
    def whoami(ctx: Context) -> str:
        headers = ctx.headers or {}
        return headers.get("authorization", "(none)")

    @server.tool(description="A text part and a picture.")
    def picture() -> list[TextContent | ImageContent]:
        return [
            TextContent(type="text", text="here it is"),
            ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png"),
        ]

    @server.tool(name="dotted.name", description="A name a model cannot call as it is.")
    def dotted() -> str:
        return "dotted ok"

    return server


def http_app(server: MCPServer) -> ASGIApp:
    """Streamable HTTP (with its lifespan, which runs the session manager) plus the SSE routes;
    any path under `/locked` answers 401, as a server does to a missing or wrong key."""
    app = server.streamable_http_app()
    app.router.routes.extend(server.sse_app().routes)

    async def locked(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/locked"):
            await PlainTextResponse("no key", status_code=401)(scope, receive, send)
            return
        await app(scope, receive, send)

    return locked


def _serve_fd(fd: int) -> None:
    import uvicorn

    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(http_app(make_server()), log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


@dataclass(frozen=True)
class McpServer:
    base_url: str  # http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]

    @property
    def http_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def sse_url(self) -> str:
        return f"{self.base_url}/sse"


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def serve_in_subprocess(*, startup_timeout: float = 20.0) -> Iterator[McpServer]:
    sock = _listening_socket()
    port = sock.getsockname()[1]
    command = [sys.executable, str(Path(__file__).resolve()), "--fd", str(sock.fileno())]
    process = subprocess.Popen(command, pass_fds=[sock.fileno()])
    sock.close()  # the child holds it now
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while not _answers(port):
            if process.poll() is not None:
                raise RuntimeError(f"the MCP test server exited with code {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("the MCP test server did not start")
            time.sleep(0.05)
        yield McpServer(base_url, process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _answers(port: int) -> bool:
    """Whether the server answers HTTP yet (the socket accepts before uvicorn is serving)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return conn.recv(16).startswith(b"HTTP/1.1")
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, help="serve HTTP on this inherited listening socket")
    parser.add_argument("--stdio", action="store_true", help="serve over stdin/stdout")
    args = parser.parse_args()
    if args.stdio:
        make_server().run("stdio")
    elif args.fd is not None:
        _serve_fd(args.fd)
    else:
        parser.error("give --fd or --stdio")


if __name__ == "__main__":
    main()
