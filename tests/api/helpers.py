from __future__ import annotations

import httpx

from tests.support.sse import Frame, parse_frames


async def create_flow(
    client: httpx.AsyncClient,
    flow_data: str,
    name: str = "test flow",
    *,
    chatflow_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    record = {"name": name, "flowData": flow_data, **({"id": chatflow_id} if chatflow_id else {})}
    response = await client.post("/api/v1/chatflows", json=record, headers=headers or {})
    assert response.status_code == 200, response.text
    created: str = response.json()["id"]
    return created


async def stream(client: httpx.AsyncClient, chatflow_id: str, body: dict[str, object]) -> list[Frame]:
    response = await client.post(f"/api/v1/prediction/{chatflow_id}", json={**body, "streaming": True})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream"
    return parse_frames(response.content)
