from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from streamwise.app import create_app
from streamwise.nodes.services import NodeServices
from streamwise.settings import Settings
from tests.support.server import LiveServer, live_server

# Tests add their scripted nodes to the catalog themselves; production never has them.
FAKE_MODULES = ["tests.support.fake_model", "tests.support.fake_retrieval", "tests.support.fake_tools"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=None,
        seed=False,
        preload_local_model=False,
        heartbeat_seconds=15,
        shutdown_grace_seconds=5,
        node_modules=FAKE_MODULES,
    )


@pytest.fixture
def services() -> NodeServices:
    return NodeServices(env={})


@pytest.fixture
async def app(settings: Settings, services: NodeServices) -> AsyncIterator[FastAPI]:
    application = create_app(settings, services)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server on 127.0.0.1, shared by one test module."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("live"),
        seed=False,
        preload_local_model=False,
        heartbeat_seconds=15,
        shutdown_grace_seconds=5,
        node_modules=FAKE_MODULES,
    )
    with live_server(settings, NodeServices(env={})) as running:
        yield running
