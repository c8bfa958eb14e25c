"""Fixtures for vector store node tests: services with a data directory, a Chroma server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from streamwise.nodes.services import NodeServices
from tests.vectors.chroma_server import chroma_server


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[NodeServices]:
    node_services = NodeServices(env={}, data_dir=tmp_path / "data", model_timeout_seconds=10)
    yield node_services
    await node_services.aclose()


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with chroma_server(tmp_path_factory.mktemp("chroma")) as url:
        yield url
