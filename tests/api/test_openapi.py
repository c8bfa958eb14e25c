"""The OpenAPI document: what it says, and that the live server keeps to it (schemathesis).

Every documented operation is driven with schemathesis-generated requests, positive (within the
schema: accepted, never a 5xx) and, where there is something to get wrong, negative (outside it:
refused with a 4xx); every answer is checked against the document (status, content type, headers,
body). Most requests name a real chatflow that has messages, so predictions, message listings and
aborts run their real paths, not only 404s.

schemathesis' pytest plugin does not work with this pytest, so each operation's strategy is driven
by hypothesis directly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Ok
from schemathesis.generation.hypothesis.examples import generate_one
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from streamwise.api.chatflows import TYPES
from streamwise.api.errors import STATUS
from streamwise.api.openapi import FORM, OPERATIONS
from streamwise.api.schemas import ROLES
from streamwise.app import create_app
from streamwise.nodes.services import NodeServices
from streamwise.settings import Settings
from streamwise.wire.requests import parse_prediction
from tests.support.flows import fake_model, rag_flow
from tests.support.server import LiveServer, live_server

Operation = APIOperation[Any, Any, Any, Any]
AnyCase = Case[Any]

SEEDED_ID = "openapi-seeded"
FLOW = rag_flow(
    fake_model(tokens=["Hello", " from", " the", " spec"]),
    texts=["The spec says hello.", "Streamwise speaks Flowise."],
    memory="bufferMemory",
)
REF_PREFIX = "#/components/schemas/"
MAX_EXAMPLES = 40
KEYED_EXAMPLES = 15  # per keyed run (two of them): the same paths, behind the key check
# Predictions read three encodings, and have the most fields: they get more.
MORE_EXAMPLES = {"POST /api/v1/prediction/{chatflow_id}": 80}
RUNS = [
    pytest.param(f"{method.upper()} {path}", mode, id=f"{method.upper()} {path} {mode}")
    for (method, path), described in OPERATIONS.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # Without a body or a query there is nothing to make invalid: a path segment is any text.
    if mode.is_positive or described.bodies or described.query
]


def _settings(tmp: Path) -> Settings:
    return Settings(
        data_dir=tmp,
        seed=False,
        preload_local_model=False,
        shutdown_grace_seconds=5,
        node_modules=["tests.support.fake_model", "tests.support.fake_retrieval"],
    )


# --- the document -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    document: dict[str, Any] = create_app(_settings(tmp_path_factory.mktemp("doc"))).openapi()
    return document


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_the_document_is_valid_openapi(spec: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(spec)
    schema.validate()
    assert all(isinstance(result, Ok) for result in schema.get_all_operations())


def test_every_operation_is_described(spec: dict[str, Any]) -> None:
    assert {(method, path) for method, path, _ in _operations(spec)} == set(OPERATIONS)


def test_no_422_is_documented(spec: dict[str, Any]) -> None:
    for method, path, operation in _operations(spec):
        assert "422" not in operation["responses"], (method, path)
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_request_bodies_are_described(spec: dict[str, Any]) -> None:
    bodies = {
        (method, path): sorted(operation["requestBody"]["content"])
        for method, path, operation in _operations(spec)
        if "requestBody" in operation
    }
    assert bodies == {
        ("post", "/api/v1/prediction/{chatflow_id}"): [
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ],
        ("post", "/api/v1/chatflows"): ["application/json"],
        ("put", "/api/v1/chatflows/{chatflow_id}"): ["application/json"],
        ("post", "/api/v1/vector/upsert/{chatflow_id}"): ["application/json", "multipart/form-data"],
        ("post", "/api/v1/feedback"): ["application/json"],
        ("post", "/api/v1/feedback/{chatflow_id}"): ["application/json"],
        ("put", "/api/v1/feedback/{feedback_id}"): ["application/json"],
        ("post", "/api/v1/apikey"): ["application/json"],
        ("put", "/api/v1/apikey/{key_id}"): ["application/json"],
        ("post", "/api/v1/credentials"): ["application/json"],
        ("put", "/api/v1/credentials/{credential_id}"): ["application/json"],
    }


def test_errors_are_flowise_bodies_with_statuses_the_server_sends(spec: dict[str, Any]) -> None:
    sent = set(STATUS.values()) - {500}  # a 500 is a bug, not part of the contract
    for method, path, operation in _operations(spec):
        responses = operation["responses"]
        assert "200" in responses, (method, path)
        for status, response in responses.items():
            if status != "200" and (path, status) != ("/api/v1/health", "503"):
                assert int(status) in sent, (method, path, status)
                assert response["content"] == {
                    "application/json": {"schema": {"$ref": REF_PREFIX + "ErrorBody"}}
                }
    prediction = spec["paths"]["/api/v1/prediction/{chatflow_id}"]["post"]["responses"]
    assert set(prediction) == {
        "200",
        "400",
        "401",
        "403",
        "404",
        "408",
        "410",
        "411",
        "413",
        "429",
        "502",
        "503",
        "504",
    }
    assert set(prediction["200"]["content"]) == {"application/json", "text/event-stream"}
    assert set(spec["paths"]["/api/v1/chatflows/{chatflow_id}"]["get"]["responses"]) == {
        "200",
        "401",
        "403",
        "404",
    }
    assert "401" not in spec["paths"]["/api/v1/ping"]["get"]["responses"]


def test_the_documented_values_are_the_ones_the_readers_take(spec: dict[str, Any]) -> None:
    components = spec["components"]["schemas"]
    types = components["ChatflowCreate"]["properties"]["type"]["anyOf"][0]["enum"]
    assert set(types) == TYPES
    for role in ROLES:
        turn = {"role": role, "content": "Hi"}
        assert parse_prediction({"question": "q", "history": [turn]}).history


def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    components = spec["components"]["schemas"]
    refs = set(_refs(spec))
    assert refs
    for ref in refs:
        assert ref.startswith(REF_PREFIX) and ref.removeprefix(REF_PREFIX) in components, ref


def test_limits_follow_the_settings(tmp_path: Path) -> None:
    settings = _settings(tmp_path).model_copy(update={"max_message_chars": 77, "max_history_turns": 5})
    text = json.dumps(create_app(settings).openapi())
    assert '"maxLength": 77' in text and '"maxItems": 5' in text
    assert "200000" not in text and "x-streamwise-limit" not in text


# --- the live server against the document ---------------------------------------------------------


@dataclass
class Api:
    server: LiveServer
    schema: BaseSchema
    admin: dict[str, str]  # what seeding sends: the key, in keyed mode
    headers: dict[str, str]  # what every generated request sends

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def operation(self, label: str) -> Operation:
        method, path = label.split(" ", 1)
        found: Operation = self.schema[path][method]
        return found

    def ensure_seeded(self) -> None:
        """The chatflow the requests name exists and has messages (DELETE examples remove them)."""
        listed = httpx.get(f"{self.base_url}/api/v1/chatmessage/{SEEDED_ID}", headers=self.admin, timeout=10)
        if listed.status_code == 404:
            body = {"id": SEEDED_ID, "name": "openapi", "flowData": FLOW}
            created = httpx.post(
                f"{self.base_url}/api/v1/chatflows", json=body, headers=self.admin, timeout=10
            )
            assert created.status_code == 200, created.text
        if listed.status_code == 404 or listed.json() == []:
            question = {"question": "Hello?", "chatId": "openapi-chat"}
            answered = httpx.post(
                f"{self.base_url}/api/v1/prediction/{SEEDED_ID}",
                json=question,
                headers=self.admin,
                timeout=10,
            )
            assert answered.status_code == 200, answered.text


# Open (no key needed; a key that schemathesis creates does not close it), and keyed, with the key
# and without it: every answer still keeps to the document (401s included), never a 5xx.
MODES = ["open", "keyed", "keyed-no-key"]


def _start(tmp_path_factory: pytest.TempPathFactory, mode: str) -> Iterator[Api]:
    # Small limits, so that requests just over them (negative data) stay small and quick.
    settings = _settings(tmp_path_factory.mktemp("schemathesis")).model_copy(
        update={
            "max_message_chars": 1000,
            "max_history_turns": 10,
            "auth": "open" if mode == "open" else "keys",
        }
    )
    with live_server(settings, NodeServices(env={})) as running:
        schema = schemathesis.openapi.from_url(f"{running.base_url}/openapi.json", timeout=10)
        admin: dict[str, str] = {}
        if mode != "open":
            created = asyncio.run_coroutine_threadsafe(
                running.state.keys.create("schemathesis"), running.loop
            )
            admin = {"Authorization": f"Bearer {created.result(30).key}"}
        api = Api(running, schema, admin, admin if mode == "keyed" else {})
        api.ensure_seeded()
        yield api


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from _start(tmp_path_factory, "open")


@pytest.fixture(scope="module", params=MODES[1:])
def keyed_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from _start(tmp_path_factory, request.param)


def test_the_server_serves_the_document(api: Api) -> None:
    response = httpx.get(f"{api.base_url}/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.json() == api.server.app.openapi()


def _runnable(case: AnyCase) -> AnyCase:
    """A schema can say that flowData is a graph, not that it runs: valid requests get one that does."""
    if isinstance(case.body, dict) and "flowData" in case.body:
        case.body["flowData"] = FLOW
    # Nor that `apikeyid` names a key that exists (any other is a 400): valid requests bind none.
    if isinstance(case.body, dict) and case.body.get("apikeyid"):
        case.body["apikeyid"] = None
    return case


def _json_text_in_forms(case: AnyCase) -> AnyCase:
    """The document says (`encoding`) that a form carries these fields as JSON text; schemathesis does
    so for multipart parts but spreads them over url-encoded fields, so it is done here."""
    described = OPERATIONS[(case.method.lower(), case.path)]
    if case.media_type == FORM and isinstance(case.body, dict):
        for name in described.json_fields:
            if isinstance(case.body.get(name), dict | list):
                case.body[name] = json.dumps(case.body[name])
    return case


def _strategy(operation: Operation, mode: GenerationMode) -> st.SearchStrategy[AnyCase]:
    cases = operation.as_strategy(generation_mode=mode)
    if any(parameter.name == "chatflow_id" for parameter in operation.path_parameters):
        seeded = operation.as_strategy(generation_mode=mode, path_parameters={"chatflow_id": SEEDED_ID})
        # Mostly the real chatflow, for the real paths; now and then any id, for the 404s.
        cases = st.sampled_from([seeded, seeded, seeded, cases]).flatmap(lambda chosen: chosen)
    if mode.is_positive:
        cases = cases.map(_runnable)
    return cases.map(_json_text_in_forms)


@pytest.mark.parametrize(("label", "mode"), RUNS)
def test_the_server_keeps_to_the_document(api: Api, label: str, mode: GenerationMode) -> None:
    _keeps_to_the_document(api, label, mode, MORE_EXAMPLES.get(label, MAX_EXAMPLES))


@pytest.mark.parametrize(("label", "mode"), RUNS)
def test_the_server_keeps_to_the_document_in_keyed_mode(
    keyed_api: Api, label: str, mode: GenerationMode
) -> None:
    _keeps_to_the_document(keyed_api, label, mode, KEYED_EXAMPLES)


def _keeps_to_the_document(api: Api, label: str, mode: GenerationMode, examples: int) -> None:
    operation = api.operation(label)
    # A schema cannot say which file names a chatflow's loaders take: for an upload of a kind none of
    # them reads (schemathesis names every file after its field, "files"), a 400 naming the file is
    # the right answer to a schema-valid request, and the one refusal allowed there.
    uploads = mode.is_positive and label == "POST /api/v1/vector/upsert/{chatflow_id}"

    @settings(
        max_examples=examples,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=_strategy(operation, mode))
    def check(case: AnyCase) -> None:
        api.ensure_seeded()
        if not uploads:
            case.call_and_validate(timeout=10, headers=api.headers)  # every check schemathesis has
            return
        response = case.call_and_validate(
            timeout=10, headers=api.headers, excluded_checks=[positive_data_acceptance]
        )
        # 404: any id, now and then; 401: keyed mode without the key.
        assert response.status_code in (200, 404, 400, 401), response.text
        if response.status_code == 400:
            assert response.json()["message"].startswith("File "), response.text

    if mode.is_positive:  # the document's own examples, as they are
        for strategy in api.schema.get_strategies_from_examples(operation):
            check = example(case=_json_text_in_forms(_runnable(generate_one(strategy))))(check)
    check()


# --- what the suite found -------------------------------------------------------------------------


def test_a_chat_id_with_a_newline_can_be_aborted(api: Api) -> None:
    response = httpx.put(f"{api.base_url}/api/v1/chatmessage/abort/{SEEDED_ID}/a%0Ab", timeout=10)
    assert response.status_code == 200, response.text


def test_a_whole_number_written_as_a_float_is_a_chat_id(api: Api) -> None:
    body = {"question": "Hello?", "chatId": 7.0}
    response = httpx.post(f"{api.base_url}/api/v1/prediction/{SEEDED_ID}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["chatId"] == "7"


def test_a_form_field_given_twice_is_refused(api: Api) -> None:
    url = f"{api.base_url}/api/v1/prediction/{SEEDED_ID}"
    fields = [("question", "first"), ("question", "second")]
    urlencoded = httpx.post(
        url, content="question=first&question=second", headers={"content-type": FORM}, timeout=10
    )
    multipart = httpx.post(url, files=[(name, (None, value)) for name, value in fields], timeout=10)
    for response in (urlencoded, multipart):
        assert response.status_code == 400, response.text
        assert "'question' must be a string" in response.json()["message"]


@pytest.mark.parametrize("bound", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
def test_a_date_filter_at_the_calendars_ends_is_not_a_server_error(api: Api, bound: str) -> None:
    query = {"startDate": bound, "endDate": bound}
    response = httpx.get(f"{api.base_url}/api/v1/chatmessage/{SEEDED_ID}", params=query, timeout=10)
    assert response.status_code == 200, response.text
