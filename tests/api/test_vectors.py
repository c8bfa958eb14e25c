"""POST /api/v1/vector/upsert/{id}: documents in, Flowise's counts out, nothing twice, nothing half."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi import FastAPI

from tests.api.helpers import create_flow
from tests.support.fake_retrieval import store_for
from tests.support.flows import edge, fake_model, node, overrides_enabled, rag_flow, ref


def with_record_manager(flow_data: str, cleanup: str) -> str:
    flow = json.loads(flow_data)
    flow["nodes"].append(
        node("recordManager_0", "SQLiteRecordManager", "Record Manager", {"cleanup": cleanup})
    )
    flow["edges"].append(edge("recordManager_0", "vectorStore_0", "recordManager"))
    store = next(n for n in flow["nodes"] if n["id"] == "vectorStore_0")
    store["data"]["inputs"]["recordManager"] = ref("recordManager_0")
    return json.dumps(flow)


async def upsert(client: httpx.AsyncClient, chatflow_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/api/v1/vector/upsert/{chatflow_id}", json=body)


async def enable_texts_override(client: httpx.AsyncClient, chatflow_id: str) -> None:
    """Let requests override the loader's `texts`, as a chatflow's apiConfig does in Flowise 2.x+."""
    api_config = overrides_enabled("fakeTextLoader", "texts")
    put = await client.put(f"/api/v1/chatflows/{chatflow_id}", json={"apiConfig": api_config})
    assert put.status_code == 200, put.text


def stored(app: FastAPI, chatflow_id: str) -> list[str]:
    store = store_for(app.state.streamwise.registry.services, chatflow_id, "vectorStore_0")
    return sorted(document.page_content for document, _ in store.entries.values())


async def test_an_upsert_answers_as_flowise_and_a_second_one_adds_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    chatflow_id = await create_flow(
        client, rag_flow(fake_model(), texts=["Paris is in France.", "Rome is in Italy."])
    )
    first = await upsert(client, chatflow_id)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "numAdded": 2,
        "numUpdated": 0,
        "numSkipped": 0,
        "numDeleted": 0,
        "addedDocs": [
            {"pageContent": "Paris is in France.", "metadata": {"source": "text-0"}},
            {"pageContent": "Rome is in Italy.", "metadata": {"source": "text-1"}},
        ],
    }
    again = (await upsert(client, chatflow_id)).json()
    assert (again["numAdded"], again["numSkipped"], again["addedDocs"]) == (0, 2, [])
    assert stored(app, chatflow_id) == ["Paris is in France.", "Rome is in Italy."]


async def test_loader_inputs_come_from_override_config(client: httpx.AsyncClient, app: FastAPI) -> None:
    chatflow_id = await create_flow(client, rag_flow(fake_model(), texts=[]))
    await enable_texts_override(client, chatflow_id)
    answer = await upsert(client, chatflow_id, overrideConfig={"texts": json.dumps(["Given at upsert."])})
    assert answer.json()["numAdded"] == 1
    assert stored(app, chatflow_id) == ["Given at upsert."]


async def test_uploaded_files_go_to_the_loader_that_takes_their_type(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    chatflow_id = await create_flow(client, rag_flow(fake_model(), texts=[]))
    answer = await client.post(
        f"/api/v1/vector/upsert/{chatflow_id}",
        files=[("files", ("notes.fake", b"first line\n\nsecond line\n", "text/plain"))],
    )
    assert answer.status_code == 200, answer.text
    assert [doc["metadata"] for doc in answer.json()["addedDocs"]] == [
        {"source": "notes.fake", "line": 1},
        {"source": "notes.fake", "line": 3},
    ]
    assert not any((app.state.streamwise.settings.data_dir / "uploads").iterdir())  # uploads are removed


async def test_a_file_no_loader_takes_is_a_400_naming_it(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, rag_flow(fake_model(), texts=[]))
    answer = await client.post(
        f"/api/v1/vector/upsert/{chatflow_id}",
        files=[("files", ("../../evil.exe", b"MZ", "application/x-msdownload"))],
    )
    assert answer.status_code == 400
    assert "'evil.exe'" in answer.json()["message"] and ".exe" in answer.json()["message"]


async def test_a_chatflow_without_a_vector_store_is_a_400(client: httpx.AsyncClient) -> None:
    from tests.support.flows import fake_flow

    chatflow_id = await create_flow(client, fake_flow(tokens=["x"]))
    answer = await upsert(client, chatflow_id)
    assert answer.status_code == 400 and "no vector store" in answer.json()["message"]
    assert (await upsert(client, "nope")).status_code == 404
    assert (await upsert(client, chatflow_id, stopNodeId="ghost")).status_code == 404


async def test_an_upsert_that_fails_part_way_leaves_the_store_as_it_was(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    texts = [f"passage number {i}" for i in range(200)]  # several batches; the second embedding call fails
    embeddings = node("fakeEmbeddings_0", "fakeEmbeddings", "Embeddings", {"failAt": 2})
    chatflow_id = await create_flow(client, rag_flow(fake_model(), texts=texts, embeddings=embeddings))
    answer = await upsert(client, chatflow_id)
    assert answer.status_code == 502 and "fakeEmbeddings_0" in answer.json()["message"]
    assert stored(app, chatflow_id) == []
    assert await app.state.streamwise.records.listed(f"{chatflow_id}/vectorStore_0") == []


async def test_cleanup_modes_decide_what_a_changed_source_deletes(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    # First upsert: text-0 "old first", text-1 "old second". The second brings text-0 "new second" only.
    for cleanup, kept, deleted in (
        ("none", ["new second", "old first", "old second"], 0),
        ("incremental", ["new second", "old second"], 1),  # text-0's old chunk goes; text-1 stays
        ("full", ["new second"], 2),  # everything the upsert did not bring again goes
    ):
        flow = with_record_manager(rag_flow(fake_model(), texts=["old first", "old second"]), cleanup)
        chatflow_id = await create_flow(client, flow)
        await enable_texts_override(client, chatflow_id)
        assert (await upsert(client, chatflow_id)).json()["numAdded"] == 2
        second = await upsert(client, chatflow_id, overrideConfig={"texts": json.dumps(["new second"])})
        assert (second.json()["numAdded"], second.json()["numDeleted"]) == (1, deleted), cleanup
        assert stored(app, chatflow_id) == kept, cleanup
        records = await app.state.streamwise.records.listed(f"{chatflow_id}/vectorStore_0")
        assert len(records) == len(kept), cleanup


async def test_a_record_manager_with_an_unknown_cleanup_is_refused_at_save(client: httpx.AsyncClient) -> None:
    flow = with_record_manager(rag_flow(fake_model(), texts=[]), "sometimes")
    answer = await client.post("/api/v1/chatflows", json={"name": "bad", "flowData": flow})
    assert answer.status_code == 400 and "recordManager_0" in answer.json()["message"]


async def test_deleting_a_chatflow_forgets_its_upsert_records(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    chatflow_id = await create_flow(client, rag_flow(fake_model(), texts=["kept until the chatflow goes"]))
    await upsert(client, chatflow_id)
    records = app.state.streamwise.records
    assert len(await records.listed(f"{chatflow_id}/vectorStore_0")) == 1
    assert (await client.delete(f"/api/v1/chatflows/{chatflow_id}")).status_code == 200
    assert await records.listed(f"{chatflow_id}/vectorStore_0") == []
