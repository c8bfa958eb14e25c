from __future__ import annotations

import httpx

from tests.support.sse import Frame, parse_frames


async def create_flow(client: httpx.AsyncClient, flow_data: str, name: str = "test flow") -> str:
    response = await client.post("/api/v1/chatflows", json={"name": name, "flowData": flow_data})
    assert response.status_code == 200, response.text
    chatflow_id: str = response.json()["id"]
    return chatflow_id


async def stream(client: httpx.AsyncClient, chatflow_id: str, body: dict[str, object]) -> list[Frame]:
    response = await client.post(f"/api/v1/prediction/{chatflow_id}", json={**body, "streaming": True})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream"
    return parse_frames(response.content)
