"""A real Streamwise server on 127.0.0.1 in a background thread, for tests that need real sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI

from streamwise.api.state import AppState
from streamwise.app import create_app
from streamwise.cli import DrainingServer
from streamwise.nodes.services import NodeServices
from streamwise.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def create_flow(base_url: str, flow_data: str, name: str = "live flow") -> str:
    """POST a chatflow to the server at `base_url`; its id."""
    response = httpx.post(
        f"{base_url}/api/v1/chatflows", json={"name": name, "flowData": flow_data}, timeout=10
    )
    assert response.status_code == 200, response.text
    chatflow_id: str = response.json()["id"]
    return chatflow_id


@dataclass
class LiveServer:
    base_url: str
    app: FastAPI
    services: NodeServices
    server: uvicorn.Server
    loop: asyncio.AbstractEventLoop

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.streamwise
        return state

    def create_flow(self, flow_data: str, name: str = "live flow") -> str:
        return create_flow(self.base_url, flow_data, name)


@contextmanager
def live_server(settings: Settings, services: NodeServices | None = None) -> Iterator[LiveServer]:
    services = services or NodeServices()
    settings = settings.model_copy(update={"port": free_port(), "host": "127.0.0.1"})
    app = create_app(settings, services)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=settings.port,
        log_level="warning",
        lifespan="on",
        ws="none",
        timeout_graceful_shutdown=5,
    )
    server = DrainingServer(config, app, settings, announce_start=False)
    loops: list[asyncio.AbstractEventLoop] = []

    def serve() -> None:
        loop = asyncio.new_event_loop()
        loops.append(loop)
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve())
        loop.close()

    thread = threading.Thread(target=serve, name="streamwise-test-server")
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(10)
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield LiveServer(f"http://127.0.0.1:{settings.port}", app, services, server, loops[0])
    finally:
        server.should_exit = True
        thread.join(30)
