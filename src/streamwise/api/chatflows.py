"""/api/v1/chatflows: create, read, update, delete and list chatflow records (Flowise field names).

flowData is checked as a prediction would use it (parsed, validated, every node built) before
anything is written, so a broken graph never becomes a row. Chatflow ids have a safe form
(`CHATFLOW_ID`), so every stored chatflow can be read, run and deleted by its URL.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request

from streamwise import jsontext
from streamwise.api.access import Access, guard
from streamwise.api.body import read_json_object
from streamwise.api.flows import check_runnable
from streamwise.api.state import AppState, State
from streamwise.errors import BadRequest, Conflict, NotFound

router = APIRouter(prefix="/api/v1/chatflows", dependencies=[guard(Access.MANAGE)])

# Letters, digits, '-' and '_', starting with a letter or digit; 36 characters at most (a UUID fits).
CHATFLOW_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,35}")
MAX_NAME_CHARS = 1000
TEXT_FIELDS = ("name", "apikeyid", "category", "type", "analytic", "speechToText", "followUpPrompts")
JSON_TEXT_FIELDS = ("chatbotConfig", "apiConfig")  # stored as JSON text, as Flowise does
BOOL_FIELDS = ("deployed", "isPublic")
TYPES = {"CHATFLOW", "AGENTFLOW", "MULTIAGENT", "ASSISTANT"}


def valid_chatflow_id(value: str) -> bool:
    return CHATFLOW_ID.fullmatch(value) is not None


async def _checked_fields(body: dict[str, Any], state: AppState, *, creating: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if creating and not isinstance(body.get("name"), str):
        raise BadRequest("Field 'name' is required")
    for key in TEXT_FIELDS:
        if key in body:
            value = body[key]
            if value is not None and not isinstance(value, str):
                raise BadRequest(f"Field '{key}' must be a string")
            fields[key] = value
    if "apikeyid" in fields:
        fields["apikeyid"] = await _bound_key(state, fields["apikeyid"])
    if isinstance(fields.get("name"), str) and len(fields["name"]) > MAX_NAME_CHARS:
        raise BadRequest(f"Field 'name' is longer than {MAX_NAME_CHARS} characters")
    if "name" in fields and fields["name"] is None:
        raise BadRequest("Field 'name' must be a string")
    for key in JSON_TEXT_FIELDS:
        if key in body:
            fields[key] = _json_text(body[key], key)
    for key in BOOL_FIELDS:
        if key in body:
            value = body[key]
            if value is not None and not isinstance(value, bool):
                raise BadRequest(f"Field '{key}' must be true or false")
            fields[key] = value
    if "type" in fields and fields["type"] is not None and fields["type"] not in TYPES:
        raise BadRequest(f"Field 'type' must be one of {', '.join(sorted(TYPES))}")
    if fields.get("type", "") is None:
        del fields["type"]  # the column is required: null means "keep" (or the default)
    if "flowData" in body or creating:
        flow_data = body.get("flowData")
        if isinstance(flow_data, dict):
            flow_data = jsontext.dumps(flow_data)
        if not isinstance(flow_data, str) or not flow_data.strip():
            raise BadRequest("Field 'flowData' is required: a JSON string with 'nodes' and 'edges'")
        await check_runnable(state, flow_data)  # FlowError → 400 naming the node
        fields["flowData"] = flow_data
    return fields


async def _bound_key(state: AppState, key_id: str | None) -> str | None:
    """The key a chatflow is bound to: an existing key's id, or None ("" unbinds, as in Flowise's UI).
    A mistyped id would lock the chatflow with no key that opens it, so it is refused."""
    if not key_id:
        return None
    if await state.keys.repository.get(key_id) is None:
        raise BadRequest(f"Field 'apikeyid': there is no API key {key_id}")
    return key_id


def _json_text(value: Any, key: str) -> str | None:
    """An object (or its JSON text) → JSON text; text that is not JSON is refused, not stored."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        return jsontext.dumps(value)
    if isinstance(value, str):
        if value.strip():
            jsontext.loads(value, f"Field '{key}'")
        return value
    raise BadRequest(f"Field '{key}' must be a JSON object or its text")


def _chatflow_id_from(body: dict[str, Any]) -> str | None:
    chatflow_id = body.get("id")
    if chatflow_id is None or chatflow_id == "":
        return None
    if not isinstance(chatflow_id, str) or not valid_chatflow_id(chatflow_id):
        raise BadRequest(
            "Field 'id' must be 1 to 36 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return chatflow_id


@router.get("")
async def list_chatflows(state: State) -> list[dict[str, Any]]:
    return [record.to_json() for record in await state.chatflows.list()]


@router.get("/{chatflow_id}")
async def get_chatflow(chatflow_id: str, state: State) -> dict[str, Any]:
    record = await state.chatflows.get(chatflow_id) if valid_chatflow_id(chatflow_id) else None
    if record is None:
        raise NotFound(f"Chatflow {chatflow_id} not found")
    return record.to_json()


@router.post("")
async def create_chatflow(request: Request, state: State) -> dict[str, Any]:
    body = await read_json_object(request, state.body_limits)
    chatflow_id = _chatflow_id_from(body)
    fields = await _checked_fields(body, state, creating=True)
    if chatflow_id is not None:
        if await state.chatflows.get(chatflow_id) is not None:
            raise Conflict(f"Chatflow {chatflow_id} already exists")
        fields["id"] = chatflow_id
    record = await state.chatflows.create(fields)
    return record.to_json()


@router.put("/{chatflow_id}")
async def update_chatflow(chatflow_id: str, request: Request, state: State) -> dict[str, Any]:
    body = await read_json_object(request, state.body_limits)
    if not valid_chatflow_id(chatflow_id) or await state.chatflows.get(chatflow_id) is None:
        raise NotFound(f"Chatflow {chatflow_id} not found")
    record = await state.chatflows.update(chatflow_id, await _checked_fields(body, state, creating=False))
    state.chatflow_cache.forget(chatflow_id)
    if record is None:
        raise NotFound(f"Chatflow {chatflow_id} not found")
    return record.to_json()


@router.delete("/{chatflow_id}")
async def delete_chatflow(chatflow_id: str, state: State) -> dict[str, Any]:
    deleted = await state.chatflows.delete(chatflow_id) if valid_chatflow_id(chatflow_id) else False
    state.chatflow_cache.forget(chatflow_id)
    if not deleted:
        raise NotFound(f"Chatflow {chatflow_id} not found")
    await state.records.forget_namespaces(f"{chatflow_id}/")
    return {"raw": [], "affected": 1}
