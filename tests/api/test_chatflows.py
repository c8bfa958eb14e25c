"""/api/v1/chatflows CRUD with Flowise's field names; broken graphs never become rows."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.flows import fake_flow


async def test_create_read_update_list_delete(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/v1/chatflows",
        json={
            "name": "One",
            "flowData": fake_flow(),
            "deployed": False,
            "isPublic": True,
            "chatbotConfig": None,
        },
    )
    assert created.status_code == 200
    record = created.json()
    for key in (
        "id",
        "name",
        "flowData",
        "deployed",
        "isPublic",
        "apikeyid",
        "chatbotConfig",
        "apiConfig",
        "category",
        "type",
        "createdDate",
        "updatedDate",
    ):
        assert key in record, key
    assert record["name"] == "One" and record["isPublic"] is True and record["type"] == "CHATFLOW"

    fetched = await client.get(f"/api/v1/chatflows/{record['id']}")
    assert fetched.json()["flowData"] == record["flowData"]

    updated = await client.put(f"/api/v1/chatflows/{record['id']}", json={"name": "Two", "deployed": True})
    assert updated.json()["name"] == "Two" and updated.json()["deployed"] is True
    assert updated.json()["flowData"] == record["flowData"]

    listed = await client.get("/api/v1/chatflows")
    assert [item["id"] for item in listed.json()] == [record["id"]]

    deleted = await client.delete(f"/api/v1/chatflows/{record['id']}")
    assert deleted.status_code == 200
    assert (await client.get(f"/api/v1/chatflows/{record['id']}")).status_code == 404


async def test_flow_data_may_be_sent_as_an_object(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/v1/chatflows", json={"name": "obj", "flowData": json.loads(fake_flow())}
    )
    assert created.status_code == 200
    assert json.loads(created.json()["flowData"])["nodes"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda flow: flow["nodes"][0]["data"].update(name="mysteryNode"), "fake_0"),
        (
            lambda flow: flow["nodes"][-1]["data"]["inputs"].update(model="{{ghost_9.data.instance}}"),
            "ghost_9",
        ),
    ],
)
async def test_broken_flow_data_is_refused_at_save_time_naming_the_node(
    client: httpx.AsyncClient, mutate: object, message: str
) -> None:
    flow = json.loads(fake_flow())
    mutate(flow)  # type: ignore[operator]
    response = await client.post("/api/v1/chatflows", json={"name": "bad", "flowData": json.dumps(flow)})
    assert response.status_code == 400 and message in response.json()["message"]
    assert (await client.get("/api/v1/chatflows")).json() == []


async def test_broken_update_leaves_the_stored_flow_untouched(client: httpx.AsyncClient) -> None:
    created = (await client.post("/api/v1/chatflows", json={"name": "ok", "flowData": fake_flow()})).json()
    response = await client.put(f"/api/v1/chatflows/{created['id']}", json={"flowData": "{nope"})
    assert response.status_code == 400
    assert (await client.get(f"/api/v1/chatflows/{created['id']}")).json()["flowData"] == created["flowData"]


@pytest.mark.parametrize(
    "body",
    [
        {"flowData": "{}"},
        {"name": "x"},
        {"name": 3, "flowData": fake_flow()},
        {"name": "x", "flowData": fake_flow(), "deployed": "yes"},
    ],
)
async def test_invalid_fields_are_400(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    response = await client.post("/api/v1/chatflows", json=body)
    assert response.status_code == 400 and response.json()["success"] is False


async def test_missing_chatflow_is_404_for_every_verb(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/chatflows/none")).status_code == 404
    assert (await client.put("/api/v1/chatflows/none", json={"name": "x"})).status_code == 404
    assert (await client.delete("/api/v1/chatflows/none")).status_code == 404


async def test_unknown_route_is_404_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.json()["success"] is False


async def test_ping(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/ping")
    assert response.text == "pong"


async def test_a_prediction_right_after_an_update_runs_the_new_graph(client: httpx.AsyncClient) -> None:
    created = (
        await client.post("/api/v1/chatflows", json={"name": "v1", "flowData": fake_flow(tokens=["old"])})
    ).json()
    url = f"/api/v1/prediction/{created['id']}"
    assert (await client.post(url, json={"question": "q"})).json()["text"] == "old"
    await client.put(f"/api/v1/chatflows/{created['id']}", json={"flowData": fake_flow(tokens=["new"])})
    assert (await client.post(url, json={"question": "q"})).json()["text"] == "new"
    await client.delete(f"/api/v1/chatflows/{created['id']}")
    assert (await client.post(url, json={"question": "q"})).status_code == 404
