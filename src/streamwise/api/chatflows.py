"""/api/v1/chatflows: create, read, update, delete and list chatflow records (Flowise field names).

flowData is validated before anything is written, so a broken graph never becomes a row.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from streamwise.api.body import read_json_object
from streamwise.api.errors import ApiError
from streamwise.api.state import AppState, State
from streamwise.engine.graph import parse_flow_data

router = APIRouter(prefix="/api/v1/chatflows")

TEXT_FIELDS = ("name", "apikeyid", "category", "type", "analytic", "speechToText", "followUpPrompts")
JSON_TEXT_FIELDS = ("chatbotConfig", "apiConfig")  # stored as JSON text, as Flowise does
BOOL_FIELDS = ("deployed", "isPublic")
TYPES = {"CHATFLOW", "AGENTFLOW", "MULTIAGENT", "ASSISTANT"}


def _checked_fields(body: dict[str, Any], state: AppState, *, creating: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if "flowData" in body or creating:
        flow_data = body.get("flowData")
        if isinstance(flow_data, dict):
            flow_data = json.dumps(flow_data)
        if not isinstance(flow_data, str) or not flow_data.strip():
            raise ApiError(400, "Field 'flowData' is required: a JSON string with 'nodes' and 'edges'")
        parse_flow_data(flow_data, state.registry)  # raises GraphError → 400 naming the node
        fields["flowData"] = flow_data
    if creating and not isinstance(body.get("name"), str):
        raise ApiError(400, "Field 'name' is required")
    for key in TEXT_FIELDS:
        if key in body:
            value = body[key]
            if value is not None and not isinstance(value, str):
                raise ApiError(400, f"Field '{key}' must be a string")
            fields[key] = value
    for key in JSON_TEXT_FIELDS:
        if key in body:
            value = body[key]
            fields[key] = json.dumps(value) if isinstance(value, dict | list) else value
            if fields[key] is not None and not isinstance(fields[key], str):
                raise ApiError(400, f"Field '{key}' must be a JSON object or its text")
    for key in BOOL_FIELDS:
        if key in body:
            value = body[key]
            if value is not None and not isinstance(value, bool):
                raise ApiError(400, f"Field '{key}' must be true or false")
            fields[key] = value
    if fields.get("type") is not None and fields["type"] not in TYPES:
        raise ApiError(400, f"Field 'type' must be one of {', '.join(sorted(TYPES))}")
    return fields


@router.get("")
async def list_chatflows(state: State) -> list[dict[str, Any]]:
    return [record.to_json() for record in await state.chatflows.list()]


@router.get("/{chatflow_id}")
async def get_chatflow(chatflow_id: str, state: State) -> dict[str, Any]:
    record = await state.chatflows.get(chatflow_id)
    if record is None:
        raise ApiError(404, f"Chatflow {chatflow_id} not found")
    return record.to_json()


@router.post("")
async def create_chatflow(request: Request, state: State) -> dict[str, Any]:
    body = await read_json_object(request, state.settings.max_body_bytes)
    fields = _checked_fields(body, state, creating=True)
    if isinstance(body.get("id"), str) and body["id"]:
        if await state.chatflows.get(body["id"]) is not None:
            raise ApiError(409, f"Chatflow {body['id']} already exists")
        fields["id"] = body["id"]
    record = await state.chatflows.create(fields)
    return record.to_json()


@router.put("/{chatflow_id}")
async def update_chatflow(chatflow_id: str, request: Request, state: State) -> dict[str, Any]:
    body = await read_json_object(request, state.settings.max_body_bytes)
    if await state.chatflows.get(chatflow_id) is None:
        raise ApiError(404, f"Chatflow {chatflow_id} not found")
    record = await state.chatflows.update(chatflow_id, _checked_fields(body, state, creating=False))
    state.chatflow_cache.forget(chatflow_id)
    if record is None:
        raise ApiError(404, f"Chatflow {chatflow_id} not found")
    return record.to_json()


@router.delete("/{chatflow_id}")
async def delete_chatflow(chatflow_id: str, state: State) -> dict[str, Any]:
    deleted = await state.chatflows.delete(chatflow_id)
    state.chatflow_cache.forget(chatflow_id)
    if not deleted:
        raise ApiError(404, f"Chatflow {chatflow_id} not found")
    return {"raw": [], "affected": 1}
