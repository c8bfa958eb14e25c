"""GET /openapi.json: FastAPI's document, completed with what FastAPI cannot see.

The routes read their bodies by hand and answer every failure with Flowise's error JSON, so FastAPI
alone would describe no request body, untyped answers, and a 422 that is never sent (validation
errors are 400s). `OPERATIONS` says, per route, what it reads and what it answers; `document` writes
that into FastAPI's document, with the models of `streamwise.api.schemas` as its components.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from streamwise.api import apikey_schemas, credential_schemas, schemas
from streamwise.api.access import Access, access_of, api_routes
from streamwise.settings import Settings
from streamwise.wire.requests import RequestLimits

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
EVENT_STREAM = "text/event-stream"
REF = "#/components/schemas/{model}"

ERRORS: dict[int, str] = {
    400: "The request cannot be used as sent; the message names the field (or the chatflow's node).",
    401: "No valid API key, or not the key the chatflow is bound to (see docs/security.md).",
    403: "A browser request from a site this route or chatflow does not answer.",
    404: "No such chatflow (or other record the path names).",
    408: "The body did not arrive within STREAMWISE_BODY_TIMEOUT_SECONDS; the connection is closed.",
    409: "A record with that id already exists.",
    410: "The run's events from that position are no longer kept (STREAMWISE_RESUME_BUFFER_BYTES).",
    411: "A multipart body without Content-Length.",
    413: "The body is larger than STREAMWISE_MAX_BODY_BYTES.",
    429: "Over the chatflow's rate limit, too many answers running for this client, or the model is "
    "rate limited; Retry-After says when to try again.",
    502: "The model failed while answering.",
    503: "The server is shutting down, or the answer could not be stored.",
    504: "The model did not answer within its deadline.",
}
_PATH_PARAMETERS = {
    "chatflow_id": "The chatflow's id.",
    "chat_id": "The chat (its chatId) whose running predictions to stop; any text, '/' included.",
    "feedback_id": "The feedback's id.",
    "credential_id": "The credential's id.",
    "key_id": "The API key's id.",
    "run_id": "The run's id: a streamed answer's X-Run-Id header, or the first part of its frames' id.",
}
_HEADERS: dict[int, dict[str, Any]] = {
    429: {
        "Retry-After": {
            "description": "Seconds until a retry may pass (the model's own, when it sent one).",
            "schema": {"type": "string"},
        }
    },
}


@dataclass(frozen=True)
class Operation:
    """What one route reads and answers, beyond what FastAPI sees in its signature."""

    ok: type[BaseModel] | None = None  # the 200 JSON body; None keeps FastAPI's (ping's text)
    many: bool = False  # `ok` comes as a list
    errors: tuple[int, ...] = ()
    bodies: Mapping[str, type[BaseModel]] = field(default_factory=dict)  # by media type
    json_fields: tuple[str, ...] = ()  # fields a form carries as JSON text
    query: type[BaseModel] | None = None  # documents the query parameters FastAPI declares
    streams: bool = False  # may answer text/event-stream instead
    events_only: bool = False  # answers text/event-stream only (a run's events)
    unwell: bool = False  # a 503 with the `ok` body (the health check), not an error body


_PREDICTION_ERRORS = (400, 404, 408, 410, 411, 413, 429, 502, 503, 504)
_BODY_ERRORS = (400, 408, 413)

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("get", "/api/v1/chatflows-streaming/{chatflow_id}"): Operation(
        schemas.StreamingCheck, errors=(400, 404)
    ),
    ("post", "/api/v1/prediction/{chatflow_id}"): Operation(
        schemas.PredictionResult,
        errors=_PREDICTION_ERRORS,
        bodies={
            JSON: schemas.PredictionBody,
            FORM: schemas.PredictionForm,
            MULTIPART: schemas.PredictionForm,
        },
        json_fields=("overrideConfig", "history"),
        streams=True,
    ),
    ("get", "/api/v1/chatflows"): Operation(schemas.Chatflow, many=True),
    ("post", "/api/v1/chatflows"): Operation(
        schemas.Chatflow, errors=(*_BODY_ERRORS, 409), bodies={JSON: schemas.ChatflowCreate}
    ),
    ("get", "/api/v1/chatflows/{chatflow_id}"): Operation(schemas.Chatflow, errors=(404,)),
    ("put", "/api/v1/chatflows/{chatflow_id}"): Operation(
        schemas.Chatflow, errors=(*_BODY_ERRORS, 404), bodies={JSON: schemas.ChatflowChanges}
    ),
    ("delete", "/api/v1/chatflows/{chatflow_id}"): Operation(schemas.Deleted, errors=(404,)),
    ("get", "/api/v1/chatmessage/{chatflow_id}"): Operation(
        schemas.ChatMessage, many=True, errors=(400, 404), query=schemas.MessageQuery
    ),
    ("delete", "/api/v1/chatmessage/{chatflow_id}"): Operation(
        schemas.Deleted, errors=(400, 404), query=schemas.MessageQuery
    ),
    ("put", "/api/v1/chatmessage/abort/{chatflow_id}/{chat_id}"): Operation(schemas.Aborted),
    ("post", "/api/v1/vector/upsert/{chatflow_id}"): Operation(
        schemas.UpsertResult,
        errors=(400, 404, 408, 411, 413, 502, 503, 504),
        bodies={JSON: schemas.UpsertBody, MULTIPART: schemas.UpsertForm},
        json_fields=("overrideConfig",),
    ),
    ("get", "/api/v1/ping"): Operation(),
    ("get", "/api/v1/health"): Operation(schemas.HealthReport, unwell=True),
    ("get", "/api/v1/public-chatbotConfig/{chatflow_id}"): Operation(
        schemas.PublicChatbotConfig, errors=(404,)
    ),
    ("post", "/api/v1/feedback"): Operation(
        schemas.Feedback, errors=(*_BODY_ERRORS, 404, 409), bodies={JSON: schemas.FeedbackCreate}
    ),
    ("post", "/api/v1/feedback/{chatflow_id}"): Operation(
        schemas.Feedback, errors=(*_BODY_ERRORS, 404, 409), bodies={JSON: schemas.FeedbackCreate}
    ),
    ("get", "/api/v1/feedback/{chatflow_id}"): Operation(
        schemas.Feedback, many=True, errors=(400, 404), query=schemas.FeedbackQuery
    ),
    ("put", "/api/v1/feedback/{feedback_id}"): Operation(
        schemas.FeedbackUpdated, errors=(*_BODY_ERRORS, 404), bodies={JSON: schemas.FeedbackChanges}
    ),
    ("get", "/api/v1/runs/{run_id}/events"): Operation(events_only=True, errors=(400, 404, 410)),
    ("get", "/api/v1/apikey"): Operation(apikey_schemas.ApiKeyEntry, many=True),
    ("post", "/api/v1/apikey"): Operation(
        apikey_schemas.ApiKeyEntry, many=True, errors=_BODY_ERRORS, bodies={JSON: apikey_schemas.ApiKeyName}
    ),
    ("put", "/api/v1/apikey/{key_id}"): Operation(
        apikey_schemas.ApiKeyEntry,
        many=True,
        errors=(*_BODY_ERRORS, 404),
        bodies={JSON: apikey_schemas.ApiKeyName},
    ),
    ("delete", "/api/v1/apikey/{key_id}"): Operation(apikey_schemas.ApiKeyEntry, many=True, errors=(404,)),
    ("post", "/api/v1/credentials"): Operation(
        credential_schemas.Credential,
        errors=(*_BODY_ERRORS, 409),
        bodies={JSON: credential_schemas.CredentialCreate},
    ),
    ("get", "/api/v1/credentials"): Operation(
        credential_schemas.Credential, many=True, query=credential_schemas.CredentialQuery
    ),
    ("get", "/api/v1/credentials/{credential_id}"): Operation(credential_schemas.Credential, errors=(404,)),
    ("put", "/api/v1/credentials/{credential_id}"): Operation(
        credential_schemas.Credential,
        errors=(*_BODY_ERRORS, 404, 409),
        bodies={JSON: credential_schemas.CredentialChanges},
    ),
    ("delete", "/api/v1/credentials/{credential_id}"): Operation(schemas.Deleted, errors=(404,)),
}

# The statuses an access level adds to every route of that level (`streamwise.api.access`); a
# chatflow's allowed origins add a 403 where a browser's Origin is checked.
_ACCESS_ERRORS: dict[Access, tuple[int, ...]] = {
    Access.OPEN: (),
    Access.FLOW: (401, 403),
    Access.MANAGE: (401, 403),
    Access.MANAGE_FLOW: (401, 403),
}
BEARER = "apiKey"


def install(app: FastAPI, settings: Settings) -> None:
    """Serve `document(app, ...)` as the app's OpenAPI document, built once on first request."""
    limits = RequestLimits(settings.max_message_chars, settings.max_history_turns)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, limits)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI, limits: RequestLimits | None = None) -> dict[str, Any]:
    spec = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):  # only the 422s used them
        components.pop(name, None)
    components.update(_component_schemas(limits or RequestLimits()))
    spec["components"]["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`streamwise apikey create`); see docs/security.md for which "
            "routes need one.",
        }
    }
    levels = {
        (method.lower(), route.path_format): guard
        for route in api_routes(app)
        if (guard := access_of(route)) is not None
        for method in route.methods or ()
    }
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            operation["responses"].pop("422", None)
            described = OPERATIONS.get((method, path))
            guard = levels.get((method, path))
            if described is not None:
                if guard is not None:
                    extra = _ACCESS_ERRORS[guard.level] + ((429,) if guard.limited else ())
                    described = dataclasses.replace(
                        described, errors=tuple(sorted(set(described.errors) | set(extra)))
                    )
                _describe(operation, described)
            if guard is not None and guard.level is not Access.OPEN:
                operation["security"] = [{BEARER: []}, {}]  # a key, or none where none is needed
    return spec


def _describe(operation: dict[str, Any], described: Operation) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path" and parameter["name"] in _PATH_PARAMETERS:
            parameter["description"] = _PATH_PARAMETERS[parameter["name"]]
    responses = operation["responses"]
    if described.ok is not None:
        schema: dict[str, Any] = _ref(described.ok)
        if described.many:
            schema = {"type": "array", "items": schema}
        content: dict[str, Any] = {JSON: {"schema": schema}}
        description = "Success"
        if described.streams:
            content[EVENT_STREAM] = {"schema": _ref(schemas.StreamEvent)}
            description = "The answer; with `streaming`, when the chatflow can stream, as Server-Sent Events."
        responses["200"] = {"description": description, "content": content}
    if described.unwell and described.ok is not None:
        responses["503"] = {
            "description": "A check failed (or the server is draining); the body says which.",
            "content": {JSON: {"schema": _ref(described.ok)}},
        }
    if described.events_only:
        responses["200"] = {
            "description": "The run's events after the position asked for, as Server-Sent Events.",
            "content": {EVENT_STREAM: {"schema": _ref(schemas.StreamEvent)}},
        }
    for status in described.errors:
        response: dict[str, Any] = {
            "description": ERRORS[status],
            "content": {JSON: {"schema": _ref(schemas.ErrorBody)}},
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        responses[str(status)] = response
    if described.bodies:
        operation["requestBody"] = _request_body(described)
    if described.query is not None:
        _document_query(operation, described.query)


def _request_body(described: Operation) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for media_type, model in described.bodies.items():
        entry: dict[str, Any] = {"schema": _ref(model)}
        if media_type != JSON and described.json_fields:
            entry["encoding"] = {name: {"contentType": JSON} for name in described.json_fields}
        content[media_type] = entry
    return {"required": True, "content": content}


def _document_query(operation: dict[str, Any], model: type[BaseModel]) -> None:
    properties = model.model_json_schema(ref_template=REF)["properties"]
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "query" and parameter["name"] in properties:
            schema = dict(properties[parameter["name"]])
            description = schema.pop("description", None)
            if description:
                parameter["description"] = description
            schema.pop("default", None)
            schema.pop("title", None)
            parameter["schema"] = schema


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": REF.format(model=model.__name__)}


def _documented_models() -> Iterator[tuple[type[BaseModel], JsonSchemaMode]]:
    for described in OPERATIONS.values():
        for model in described.bodies.values():
            yield model, "validation"
        if described.ok is not None:
            yield described.ok, "serialization"
        if described.streams or described.events_only:
            yield schemas.StreamEvent, "serialization"
            yield schemas.StreamFrame, "serialization"
    yield schemas.ErrorBody, "serialization"


def _component_schemas(limits: RequestLimits) -> dict[str, Any]:
    models = list(dict.fromkeys(_documented_models()))
    _, definitions = models_json_schema(models, ref_template=REF)
    found: dict[str, Any] = copy.deepcopy(definitions.get("$defs", {}))
    for schema in found.values():
        _finish(schema, limits)
    return found


def _finish(node: Any, limits: RequestLimits) -> None:
    """Fill in the configured limits; drop `default: null`, which says nothing a reader needs and is
    wrong for fields that may be left out but not sent as null."""
    if isinstance(node, list):
        for item in node:
            _finish(item, limits)
        return
    if not isinstance(node, dict):
        return
    limit = node.pop(schemas.LIMIT, None)
    if limit is not None:
        bound = getattr(limits, limit)
        node["maxItems" if node.get("type") == "array" else "maxLength"] = bound
    if "default" in node and node["default"] is None:
        del node["default"]
    for key, value in node.items():
        if key != "examples":  # requests as sent, left as they are
            _finish(value, limits)
