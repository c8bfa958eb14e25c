"""/api/v1/credentials: the model credentials chatflows' nodes use, in Flowise's shapes, minus the data.

    POST   /api/v1/credentials        {name, credentialName, plainDataObj, id?} → the record
    GET    /api/v1/credentials        ?credentialName= (may be given more than once) → the records
    GET    /api/v1/credentials/{id}   → the record
    PUT    /api/v1/credentials/{id}   {name?, credentialName?, plainDataObj?} → the record
    DELETE /api/v1/credentials/{id}   → {"raw": [], "affected": 1}

A record is `{id, name, credentialName, createdDate, updatedDate}`. Unlike Flowise, no route ever
answers with the credential's data: neither `encryptedData` nor `plainDataObj` (Flowise's GET by id
decrypts it), so a key, once stored, is only ever sent to the model server it is for. `plainDataObj`
is encrypted before it is stored (`streamwise.store.secrets`); a PUT merges its fields into the
stored ones, as Flowise does. A node names its credential by id (`data.credential` in flowData), and
the server hands the fields to the node as inputs when it builds it (`api.credential_inputs`).

POST may choose the id, so that a Flowise export whose nodes name credentials by id runs once they
are made again here. Every route needs a key once the server needs keys (see `streamwise.api.access`).
Error messages name fields, never their values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from streamwise.api.access import Access, guard
from streamwise.api.body import read_fields
from streamwise.api.credential_schemas import (
    CREDENTIAL_ID,
    CREDENTIAL_NAME,
    MAX_FIELD_NAME_CHARS,
    MAX_FIELDS,
    MAX_NAME_CHARS,
    MAX_VALUE_CHARS,
)
from streamwise.api.state import State
from streamwise.errors import BadRequest, Conflict, NotFound
from streamwise.store.credentials import CredentialExists, CredentialRecord

router = APIRouter(prefix="/api/v1/credentials")

_MANAGE = [guard(Access.MANAGE)]
_ID = re.compile(CREDENTIAL_ID)
_KIND = re.compile(CREDENTIAL_NAME)


def _name(fields: Mapping[str, Any], *, required: bool) -> str | None:
    value = fields.get("name")
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest("Field 'name' is required: a name for the credential")
    if len(value) > MAX_NAME_CHARS:
        raise BadRequest(f"Field 'name' is longer than {MAX_NAME_CHARS} characters")
    return value


def _kind(fields: Mapping[str, Any], *, required: bool) -> str | None:
    value = fields.get("credentialName")
    if value is None and not required:
        return None
    if not isinstance(value, str) or _KIND.fullmatch(value) is None:
        raise BadRequest(
            "Field 'credentialName' is required: the kind of credential, such as openAIApi "
            "(1 to 100 letters, digits, '.', '_' or '-')"
        )
    return value


def _data(fields: Mapping[str, Any]) -> dict[str, str | None] | None:
    """`plainDataObj`: an object of text (null for "no value"); None when it is absent or null."""
    value = fields.get("plainDataObj")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("Field 'plainDataObj' must be an object of the credential's fields")
    if len(value) > MAX_FIELDS:
        raise BadRequest(f"Field 'plainDataObj' has more than {MAX_FIELDS} fields")
    data: dict[str, str | None] = {}
    for key, item in value.items():
        if not key or len(key) > MAX_FIELD_NAME_CHARS:
            raise BadRequest(
                f"Field 'plainDataObj' has a field name of 0 or over {MAX_FIELD_NAME_CHARS} characters"
            )
        if item is not None and not isinstance(item, str):
            raise BadRequest(f"Field 'plainDataObj.{key}' must be text or null")
        if item is not None and len(item) > MAX_VALUE_CHARS:
            raise BadRequest(f"Field 'plainDataObj.{key}' is longer than {MAX_VALUE_CHARS} characters")
        data[key] = item
    return data


def _chosen_id(fields: Mapping[str, Any]) -> str | None:
    value = fields.get("id")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise BadRequest(
            "Field 'id' must be 1 to 36 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return value


def _valid_id(credential_id: str) -> bool:
    return _ID.fullmatch(credential_id) is not None


def _not_found(credential_id: str) -> NotFound:
    return NotFound(f"Credential {credential_id} not found")


@router.post("", dependencies=_MANAGE)
async def create_credential(request: Request, state: State) -> dict[str, Any]:
    fields = await read_fields(request, state.body_limits)
    chosen = _chosen_id(fields)
    name = _name(fields, required=True)
    kind = _kind(fields, required=True)
    data = _data(fields) or {}
    assert name is not None and kind is not None
    try:
        record = await state.credentials.create(
            name=name,
            credential_name=kind,
            data={key: value for key, value in data.items() if value is not None},
            credential_id=chosen,
        )
    except CredentialExists:
        raise Conflict(f"Credential {chosen} already exists") from None
    return record.to_json()


@router.get("", dependencies=_MANAGE)
async def list_credentials(
    state: State, credentialName: Annotated[list[str] | None, Query()] = None
) -> list[dict[str, Any]]:
    # As in Flowise, an empty `credentialName` filters nothing.
    names = [name for name in credentialName or () if name] or None
    return [record.to_json() for record in await state.credentials.list(names)]


@router.get("/{credential_id}", dependencies=_MANAGE)
async def get_credential(credential_id: str, state: State) -> dict[str, Any]:
    """The record, without its data: unlike Flowise's, which adds the decrypted `plainDataObj`, this
    answer never holds the credential's fields."""
    record = await state.credentials.get(credential_id) if _valid_id(credential_id) else None
    if record is None:
        raise _not_found(credential_id)
    return record.to_json()


@router.put("/{credential_id}", dependencies=_MANAGE)
async def update_credential(credential_id: str, request: Request, state: State) -> dict[str, Any]:
    fields = await read_fields(request, state.body_limits)
    name = _name(fields, required=False)
    kind = _kind(fields, required=False)
    data = _data(fields)
    record: CredentialRecord | None = None
    if _valid_id(credential_id):
        record = await state.credentials.update(credential_id, name=name, credential_name=kind, data=data)
    if record is None:
        raise _not_found(credential_id)
    return record.to_json()


@router.delete("/{credential_id}", dependencies=_MANAGE)
async def delete_credential(credential_id: str, state: State) -> dict[str, Any]:
    if not _valid_id(credential_id) or not await state.credentials.delete(credential_id):
        raise _not_found(credential_id)
    return {"raw": [], "affected": 1}
