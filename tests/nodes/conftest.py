"""Fixtures for node tests: one OpenAI/Ollama stub server for the session, fresh services per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from streamwise.nodes.services import NodeServices
from tests.support.openai_stub import StubServer, serve_in_thread


@pytest.fixture(scope="session")
def stub() -> Iterator[StubServer]:
    with serve_in_thread() as server:
        yield server


@pytest.fixture
async def services() -> AsyncIterator[NodeServices]:
    # Clients are bound to the event loop they were first used on: one set per test.
    node_services = NodeServices(env={})
    yield node_services
    await node_services.aclose()
