"""After a run that used API keys and credentials every way a client can (right, wrong, in the wrong
place, refused by the model server), neither the server's log (at debug level)
nor any answer it sent holds a key, a credential or a part of one that would help an attacker."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.flows import llm_chain_flow, openai_model
from tests.support.openai_stub import StubServer, serve_in_thread
from tests.support.process import started
from tests.support.server import free_port

CREDENTIAL = "sk-proj-Zq81credentialMaterial4417"


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with serve_in_thread() as running:
        yield running


def _secrets(key: str) -> list[str]:
    """The key, its secret part, and the credential: none may be shown."""
    return [key, key.split("_", 2)[2], CREDENTIAL, CREDENTIAL[8:]]


def test_no_log_line_or_answer_holds_key_material(tmp_path: Path, stub: StubServer) -> None:
    port = free_port()
    answers: list[httpx.Response] = []
    log_file = tmp_path / "server.log"
    with started(tmp_path, port, env={"STREAMWISE_LOG_LEVEL": "debug"}, log=log_file) as server:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=20) as http:
            created = http.post("/api/v1/apikey", json={"keyName": "ops"})
            key = next(item["apiKey"] for item in created.json() if item["keyName"] == "ops")
            admin = {"Authorization": f"Bearer {key}"}
            key_id = next(item["id"] for item in created.json() if item["keyName"] == "ops")
            credential = http.post(
                "/api/v1/credentials",
                json={
                    "name": "team",
                    "credentialName": "openAIApi",
                    "plainDataObj": {"openAIApiKey": CREDENTIAL},
                },
                headers=admin,
            ).json()
            flows = {}
            for name, model in (
                ("good", "stub?tokens=3"),
                # The model server refuses the key; that it may also echo it back is
                # tests/api/test_credentials.py's case (the echo would put the key in the flow).
                ("refused", "stub?status=401&message=Incorrect API key provided"),
            ):
                graph = json.loads(llm_chain_flow(openai_model(stub.base_url, modelName=model)))
                graph["nodes"][0]["data"]["credential"] = credential["id"]
                body = {"name": name, "flowData": json.dumps(graph), "apikeyid": key_id}
                made = http.post("/api/v1/chatflows", json=body, headers=admin)
                assert made.status_code == 200, made.text
                flows[name] = made.json()["id"]
            wrong = key[:-4] + "AAAA"
            basic = httpx.BasicAuth("me", key)
            for chatflow_id in flows.values():
                for headers in ({}, {"Authorization": f"Bearer {wrong}"}, admin, {"Authorization": key}):
                    for streaming in (False, True):
                        answers.append(
                            http.post(
                                f"/api/v1/prediction/{chatflow_id}",
                                json={"question": "Hello?", "streaming": streaming},
                                headers=headers,
                            )
                        )
                answers.append(http.get(f"/chatbot/{chatflow_id}", auth=basic))
                answers.append(
                    http.get(f"/api/v1/chatmessage/{chatflow_id}", params={"chatId": key}, headers=admin)
                )
            answers.append(http.get(f"/api/v1/chatflows?apiKey={key}"))  # a key where keys do not go
            answers.append(http.get("/api/v1/apikey", headers=admin))
            answers.append(http.get("/api/v1/credentials", headers=admin))
            answers.append(http.get(f"/api/v1/credentials/{credential['id']}", headers=admin))
            answers.append(http.get(f"/api/v1/chatflows/{flows['good']}", headers=admin))
            answers.append(http.post("/api/v1/apikey", content=f'{{"keyName": {key!r}', headers=admin))
        server.send_signal(signal.SIGTERM)
        server.wait(20)
    log = log_file.read_text()
    statuses = {answer.status_code for answer in answers}
    assert {200, 401, 400, 502} <= statuses, statuses
    assert "Unauthorized" in log or "401" in log  # the log did record the refusals
    for secret in _secrets(key):
        assert secret not in log, f"the log holds {secret[:6]}…"
        for answer in answers:
            assert secret not in answer.text, f"{answer.request.url.path} answered with {secret[:6]}…"
