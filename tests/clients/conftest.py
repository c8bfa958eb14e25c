from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from streamwise.nodes.services import NodeServices
from streamwise.settings import Settings
from tests.support.server import LiveServer, live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("live"),
        seed=False,
        preload_local_model=False,
        heartbeat_seconds=15,
        shutdown_grace_seconds=5,
    )
    with live_server(settings, NodeServices(env={})) as running:
        yield running


def create_flow(server: LiveServer, flow_data: str, name: str = "live flow") -> str:
    response = httpx.post(
        f"{server.base_url}/api/v1/chatflows", json={"name": name, "flowData": flow_data}, timeout=10
    )
    assert response.status_code == 200, response.text
    chatflow_id: str = response.json()["id"]
    return chatflow_id
