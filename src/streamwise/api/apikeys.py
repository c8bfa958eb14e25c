"""/api/v1/apikey: create, list, rename and delete API keys, in Flowise's shapes.

    GET    /api/v1/apikey        every key: {id, keyName, apiKey, createdAt, chatFlows}
    POST   /api/v1/apikey        {keyName} → the same list, the new key's `apiKey` in full
    PUT    /api/v1/apikey/{id}   {keyName} → the list
    DELETE /api/v1/apikey/{id}   → the list

Unlike Flowise, which stores keys as they are and lists them in full, only a hash is stored: the key
itself is in the answer to the POST that creates it and never again; lists show `sw_<lookup>_…`,
enough to tell keys apart. Flowise's `apiSecret` is left out. Every route needs a key once the server
needs keys (see `streamwise.api.access`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from streamwise.api.access import Access, guard
from streamwise.api.body import read_json_object
from streamwise.api.state import AppState, State
from streamwise.errors import BadRequest, NotFound
from streamwise.store.apikeys import ApiKeyRecord
from streamwise.store.dates import to_js_iso

router = APIRouter(prefix="/api/v1/apikey")

MAX_NAME_CHARS = 200
_BLANK = " \t\r\n"  # what a name may not be made of only (the schema's pattern says the same)
_MANAGE = [guard(Access.MANAGE)]


def shown_key(record: ApiKeyRecord) -> str:
    return f"sw_{record.lookup}_…"


def _name(body: dict[str, Any]) -> str:
    name = body.get("keyName")
    if not isinstance(name, str) or not name.strip(_BLANK):
        raise BadRequest("Field 'keyName' is required: a name for the key")
    if len(name) > MAX_NAME_CHARS:
        raise BadRequest(f"Field 'keyName' is longer than {MAX_NAME_CHARS} characters")
    return name.strip(_BLANK)


async def key_list(state: AppState, revealed: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """Flowise's list; `revealed` is (key id, key) for the one just created."""
    bound = await state.keys.repository.bound_chatflows()
    return [
        {
            "id": record.id,
            "keyName": record.keyName,
            "apiKey": revealed[1] if revealed and revealed[0] == record.id else shown_key(record),
            "createdAt": to_js_iso(record.createdDate),
            "chatFlows": [
                {"flowName": name, "category": category or "", "updatedDate": to_js_iso(updated)}
                for name, category, updated in bound.get(record.id, [])
            ],
        }
        for record in await state.keys.repository.list()
    ]


@router.get("", dependencies=_MANAGE)
async def list_keys(state: State) -> list[dict[str, Any]]:
    return await key_list(state)


@router.post("", dependencies=_MANAGE)
async def create_key(request: Request, state: State) -> list[dict[str, Any]]:
    name = _name(await read_json_object(request, state.body_limits))
    created = await state.keys.create(name)
    return await key_list(state, (created.record.id, created.key))


@router.put("/{key_id}", dependencies=_MANAGE)
async def rename_key(key_id: str, request: Request, state: State) -> list[dict[str, Any]]:
    name = _name(await read_json_object(request, state.body_limits))
    if await state.keys.repository.rename(key_id, name) is None:
        raise NotFound(f"API key {key_id} not found")
    return await key_list(state)


@router.delete("/{key_id}", dependencies=_MANAGE)
async def delete_key(key_id: str, state: State) -> list[dict[str, Any]]:
    if not await state.keys.delete(key_id):
        raise NotFound(f"API key {key_id} not found")
    return await key_list(state)
