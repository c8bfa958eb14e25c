"""/api/v1/credentials and credentials at run time: Flowise's record shapes without the data, the
key sent only to the model server its node names, and never in an answer, an error or the log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from streamwise.engine.ports import ChatTurn
from streamwise.nodes.models import chat_openai
from streamwise.nodes.models.errors import ModelError
from streamwise.nodes.services import NodeServices
from streamwise.store.credentials import CredentialRepository
from tests.api.helpers import create_flow
from tests.support.flows import chain_flow, fake_model, node, openai_model, rag_flow
from tests.support.openai_stub import StubServer, expected_text, serve_in_thread

SECRET = "sk-proj-7Hq2credential-plaintext-9xZ"
OTHER_SECRET = "sk-proj-4Kd8second-plaintext-1wQ"
RECORD_FIELDS = {"id", "name", "credentialName", "createdDate", "updatedDate"}


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with serve_in_thread() as running:
        yield running


def repository(app: FastAPI) -> CredentialRepository:
    found: CredentialRepository = app.state.streamwise.credentials
    return found


async def create_credential(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body = {"name": "OpenAI", "credentialName": "openAIApi", "plainDataObj": {"openAIApiKey": SECRET}, **body}
    response = await client.post("/api/v1/credentials", json=body)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def with_credential(flow_data: str, node_id: str, credential_id: str, *, as_input: bool = False) -> str:
    """The graph with `node_id` naming the credential, as Flowise's canvas writes it."""
    flow = json.loads(flow_data)
    data = next(item for item in flow["nodes"] if item["id"] == node_id)["data"]
    if as_input:
        data["inputs"]["FLOWISE_CREDENTIAL_ID"] = credential_id
    else:
        data["credential"] = credential_id
    return json.dumps(flow)


def openai_chain(stub: StubServer, model: str, credential_id: str, *, as_input: bool = False) -> str:
    flow = chain_flow(openai_model(stub.base_url, modelName=model, streaming=False))
    return with_credential(flow, "chatOpenAI_0", credential_id, as_input=as_input)


async def ask(client: httpx.AsyncClient, chatflow_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "Hi", **body})


# --- the routes -----------------------------------------------------------------------------------


async def test_create_answers_the_record_without_its_data(client: httpx.AsyncClient, app: FastAPI) -> None:
    response = await client.post(
        "/api/v1/credentials",
        json={"name": "OpenAI", "credentialName": "openAIApi", "plainDataObj": {"openAIApiKey": SECRET}},
    )

    assert response.status_code == 200, response.text
    created = response.json()
    assert set(created) == RECORD_FIELDS
    assert (created["name"], created["credentialName"]) == ("OpenAI", "openAIApi")
    assert created["createdDate"].endswith("Z") and created["createdDate"] == created["updatedDate"]
    assert SECRET not in response.text
    assert await repository(app).decrypted(created["id"]) == {"openAIApiKey": SECRET}


async def test_get_by_id_answers_the_record_without_plain_data(client: httpx.AsyncClient) -> None:
    created = await create_credential(client)

    response = await client.get(f"/api/v1/credentials/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created  # no plainDataObj, unlike Flowise
    assert SECRET not in response.text
    for missing in ("no-such-credential", "not a valid id!"):
        answer = await client.get(f"/api/v1/credentials/{missing}")
        assert answer.status_code == 404 and answer.json()["message"] == f"Credential {missing} not found"


async def test_list_filters_by_credential_name_given_once_or_more(client: httpx.AsyncClient) -> None:
    openai = await create_credential(client)
    chroma = await create_credential(
        client, name="Chroma", credentialName="chromaApi", plainDataObj={"chromaApiKey": OTHER_SECRET}
    )
    await create_credential(client, name="HF", credentialName="huggingFaceApi", plainDataObj={})

    everything = await client.get("/api/v1/credentials")
    one = await client.get("/api/v1/credentials", params={"credentialName": "chromaApi"})
    two = await client.get("/api/v1/credentials?credentialName=openAIApi&credentialName=chromaApi")
    none = await client.get("/api/v1/credentials", params={"credentialName": "nothing"})
    empty = await client.get("/api/v1/credentials?credentialName=")  # filters nothing, as in Flowise

    assert [item["name"] for item in everything.json()] == ["OpenAI", "Chroma", "HF"]
    assert all(set(item) == RECORD_FIELDS for item in everything.json())
    assert one.json() == [chroma]
    assert two.json() == [openai, chroma]
    assert none.json() == []
    assert empty.json() == everything.json()
    for response in (everything, one, two):
        assert SECRET not in response.text and OTHER_SECRET not in response.text


async def test_put_changes_the_record_and_merges_the_data(client: httpx.AsyncClient, app: FastAPI) -> None:
    created = await create_credential(client, plainDataObj={"openAIApiKey": SECRET, "organization": "org-1"})

    response = await client.put(
        f"/api/v1/credentials/{created['id']}",
        json={"name": "OpenAI (team)", "plainDataObj": {"openAIApiKey": OTHER_SECRET, "organization": None}},
    )

    assert response.status_code == 200, response.text
    updated = response.json()
    assert set(updated) == RECORD_FIELDS and OTHER_SECRET not in response.text
    assert (updated["id"], updated["name"], updated["credentialName"]) == (
        created["id"],
        "OpenAI (team)",
        "openAIApi",
    )
    assert updated["updatedDate"] > created["updatedDate"]
    assert await repository(app).decrypted(created["id"]) == {"openAIApiKey": OTHER_SECRET}
    kept = await client.put(f"/api/v1/credentials/{created['id']}", json={"name": None, "plainDataObj": None})
    assert kept.status_code == 200 and kept.json()["name"] == "OpenAI (team)"
    missing = await client.put("/api/v1/credentials/nope", json={"name": "x"})
    assert missing.status_code == 404


async def test_delete_answers_as_flowise_then_404(client: httpx.AsyncClient, app: FastAPI) -> None:
    created = await create_credential(client)

    response = await client.delete(f"/api/v1/credentials/{created['id']}")

    assert response.status_code == 200 and response.json() == {"raw": [], "affected": 1}
    assert (await client.get(f"/api/v1/credentials/{created['id']}")).status_code == 404
    assert (await client.delete(f"/api/v1/credentials/{created['id']}")).status_code == 404
    assert await repository(app).decrypted(created["id"]) is None


async def test_an_id_may_be_chosen_once(client: httpx.AsyncClient) -> None:
    chosen = "5f5d7f6c-2a51-4a36-9c64-1f0c2d0f9e11"  # as a Flowise export's nodes name it

    created = await create_credential(client, id=chosen)
    again = await client.post(
        "/api/v1/credentials", json={"id": chosen, "name": "x", "credentialName": "openAIApi"}
    )

    assert created["id"] == chosen
    assert again.status_code == 409 and again.json()["message"] == f"Credential {chosen} already exists"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"credentialName": "openAIApi"}, "Field 'name' is required"),
        ({"name": "", "credentialName": "openAIApi"}, "Field 'name' is required"),
        ({"name": ["a", "b"], "credentialName": "openAIApi"}, "Field 'name' is required"),
        ({"name": "x" * 201, "credentialName": "openAIApi"}, "Field 'name' is longer than 200"),
        ({"name": "x"}, "Field 'credentialName' is required"),
        ({"name": "x", "credentialName": "open AI"}, "Field 'credentialName' is required"),
        ({"name": "x", "credentialName": "openAIApi", "id": "../etc"}, "Field 'id' must be"),
        ({"name": "x", "credentialName": "openAIApi", "plainDataObj": SECRET}, "Field 'plainDataObj' must"),
        (
            {"name": "x", "credentialName": "openAIApi", "plainDataObj": {"openAIApiKey": [SECRET]}},
            "Field 'plainDataObj.openAIApiKey' must be text or null",
        ),
        (
            {"name": "x", "credentialName": "openAIApi", "plainDataObj": {"openAIApiKey": SECRET * 3000}},
            "Field 'plainDataObj.openAIApiKey' is longer than 65536",
        ),
        (
            {"name": "x", "credentialName": "openAIApi", "plainDataObj": {"": SECRET}},
            "Field 'plainDataObj' has a field name of 0",
        ),
    ],
)
async def test_bad_input_is_a_400_naming_the_field_never_the_value(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await client.post("/api/v1/credentials", json=body)

    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(message)
    assert SECRET not in response.text
    assert (await client.get("/api/v1/credentials")).json() == []


async def test_a_body_that_is_not_json_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/credentials",
        content=b'{"plainDataObj": {"k": "' + SECRET.encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400 and SECRET not in response.text


# --- at run time ----------------------------------------------------------------------------------


@pytest.mark.parametrize("as_input", [False, True], ids=["data.credential", "FLOWISE_CREDENTIAL_ID"])
async def test_a_chatflow_sends_its_nodes_credential_to_the_model(
    client: httpx.AsyncClient, stub: StubServer, as_input: bool
) -> None:
    credential = await create_credential(client)
    model = f"stub?tokens=3&case=credential-{as_input}"
    chatflow_id = await create_flow(client, openai_chain(stub, model, credential["id"], as_input=as_input))

    response = await ask(client, chatflow_id)

    assert response.status_code == 200, response.text
    assert response.json()["text"] == expected_text(3)
    assert stub.last(model).headers["authorization"] == f"Bearer {SECRET}"


async def test_a_request_cannot_replace_the_credentials_key(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    credential = await create_credential(client)
    model = "stub?tokens=1&case=override-key"
    chatflow_id = await create_flow(client, openai_chain(stub, model, credential["id"]))

    response = await ask(client, chatflow_id, overrideConfig={"openAIApiKey": "sk-from-the-request"})

    assert response.status_code == 200, response.text
    assert stub.last(model).headers["authorization"] == f"Bearer {SECRET}"


async def test_a_changed_or_deleted_credential_takes_effect_at_once(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    credential = await create_credential(client)
    model = "stub?tokens=1&case=rotate"
    chatflow_id = await create_flow(client, openai_chain(stub, model, credential["id"]))
    assert (await ask(client, chatflow_id)).status_code == 200

    await client.put(
        f"/api/v1/credentials/{credential['id']}", json={"plainDataObj": {"openAIApiKey": OTHER_SECRET}}
    )
    assert (await ask(client, chatflow_id)).status_code == 200
    assert stub.last(model).headers["authorization"] == f"Bearer {OTHER_SECRET}"

    await client.delete(f"/api/v1/credentials/{credential['id']}")
    response = await ask(client, chatflow_id)
    # Gone, so no longer sent: the node falls back to the server's own key (none in this test).
    assert response.status_code == 200, response.text
    sent = stub.last(model).headers["authorization"]
    assert OTHER_SECRET not in sent and SECRET not in sent


async def test_a_chatflow_naming_a_credential_stored_elsewhere_runs_on_the_servers_key(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    """A Flowise export names the credentials of the server it came from."""
    model = "stub?tokens=1&case=elsewhere"
    chatflow_id = await create_flow(client, openai_chain(stub, model, "5f5d7f6c-2a51-4a36-9c64-1f0c2d0f9e11"))

    assert (await ask(client, chatflow_id)).status_code == 200
    assert SECRET not in stub.last(model).headers["authorization"]
    # Created later with the id the nodes name (as the export's), it is used at once.
    await create_credential(client, id="5f5d7f6c-2a51-4a36-9c64-1f0c2d0f9e11")
    assert (await ask(client, chatflow_id)).status_code == 200
    assert stub.last(model).headers["authorization"] == f"Bearer {SECRET}"


async def test_an_upsert_embeds_with_the_embeddings_nodes_credential(
    client: httpx.AsyncClient, stub: StubServer
) -> None:
    credential = await create_credential(client, plainDataObj={"openAIApiKey": OTHER_SECRET})
    model = "stub?dims=8&case=upsert-credential"
    embeddings = node(
        "openAIEmbeddings_0",
        "openAIEmbeddings",
        "Embeddings",
        {"basePath": stub.base_url, "modelName": model},
    )
    flow = with_credential(
        rag_flow(fake_model(), texts=["Paris is in France."], embeddings=embeddings),
        "openAIEmbeddings_0",
        credential["id"],
    )
    chatflow_id = await create_flow(client, flow)

    response = await client.post(f"/api/v1/vector/upsert/{chatflow_id}", json={})

    assert response.status_code == 200, response.text
    assert response.json()["numAdded"] == 1
    assert stub.last(model).headers["authorization"] == f"Bearer {OTHER_SECRET}"


async def test_no_answer_or_log_record_holds_the_plaintext(
    client: httpx.AsyncClient, stub: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[httpx.Response] = []
    credential = await create_credential(client)
    answers.append(await client.get("/api/v1/credentials"))
    answers.append(await client.get(f"/api/v1/credentials/{credential['id']}"))
    answers.append(
        await client.put(
            f"/api/v1/credentials/{credential['id']}", json={"plainDataObj": {"openAIApiKey": OTHER_SECRET}}
        )
    )
    answers.append(
        await client.post(
            "/api/v1/credentials",
            json={"name": "x", "credentialName": "openAIApi", "plainDataObj": {"k": {"nested": SECRET}}},
        )
    )
    good = await create_flow(client, openai_chain(stub, "stub?tokens=2&case=logs", credential["id"]))
    answers.append(await ask(client, good))
    answers.append(await ask(client, good, streaming=True))
    refused = await create_flow(
        client, openai_chain(stub, "stub?status=401&message=Incorrect API key provided", credential["id"])
    )
    answers.append(await ask(client, refused))
    answers.append(await client.get(f"/api/v1/chatflows/{good}"))
    answers.append(await client.delete(f"/api/v1/credentials/{credential['id']}"))

    assert [answer.status_code for answer in answers] == [200, 200, 200, 400, 200, 200, 502, 200, 200]
    assert "refused the credentials (HTTP 401)" in answers[6].text
    for answer in answers:
        assert SECRET not in answer.text and OTHER_SECRET not in answer.text
    assert caplog.records, "nothing was logged"
    for record in caplog.records:
        shown = f"{record.getMessage()} {record.exc_text or ''} {getattr(record, 'detail', '')}"
        assert SECRET not in shown and OTHER_SECRET not in shown, record.getMessage()


async def test_a_key_the_model_server_echoes_is_masked_in_the_error(stub: StubServer) -> None:
    key = "team-token-Zr83credential-plaintext"  # not sk-shaped: masked because it is the node's key
    services = NodeServices(env={})
    model = f"stub?status=401&message=Incorrect API key provided: {key}"
    node = chat_openai.build(
        "chatOpenAI_0", {"basePath": stub.base_url, "modelName": model, "openAIApiKey": key}, services
    )

    try:
        with pytest.raises(ModelError) as caught:
            async for _ in node.stream([ChatTurn("user", "hi")]):
                pass
    finally:
        await services.aclose()

    assert stub.last(model).headers["authorization"] == f"Bearer {key}"
    assert (
        str(caught.value)
        == "Node chatOpenAI_0 (ChatOpenAI): the model server refused the credentials (HTTP 401)"
    )
    assert caught.value.detail is not None and "Incorrect API key provided: ***" in caught.value.detail
    assert key not in caught.value.detail and key not in repr(node.config)
