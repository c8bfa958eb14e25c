"""/api/v1/chatmessage: stored exchanges (list, delete) and aborting a running prediction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.convertors import Convertor, register_url_convertor

from streamwise.api.access import Access, guard
from streamwise.api.cors import refuse_origin
from streamwise.api.state import AppState, State
from streamwise.errors import BadRequest, NotFound

router = APIRouter(prefix="/api/v1/chatmessage")

CHAT_TYPES = ("EXTERNAL", "INTERNAL")
_HISTORY = [guard(Access.MANAGE_FLOW, "chatflow_id")]


def _chat_types(raw: str | None) -> list[str] | None:
    """Flowise sends `chatType` as one value or as a JSON list such as ["EXTERNAL","INTERNAL"]."""
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        parsed = raw
    values = parsed if isinstance(parsed, list) else [parsed]
    if not all(isinstance(value, str) and value in CHAT_TYPES for value in values):
        raise BadRequest("Query 'chatType' must be EXTERNAL, INTERNAL or a JSON list of them")
    return [str(value) for value in values]


def _order(raw: str | None) -> str:
    value = (raw or "ASC").upper()
    if value not in {"ASC", "DESC"}:
        raise BadRequest("Query 'order' must be ASC or DESC")
    return value


async def _require_chatflow(state: AppState, chatflow_id: str) -> None:
    if await state.chatflows.get(chatflow_id) is None:
        raise NotFound(f"Chatflow {chatflow_id} not found")


@dataclass
class MessageFilters:
    """Flowise's query parameters for choosing stored messages (GET and DELETE share them)."""

    chatId: str | None = None
    sessionId: str | None = None
    memoryType: str | None = None
    chatType: str | None = None
    messageId: str | None = None
    startDate: str | None = None
    endDate: str | None = None

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "chat_id": self.chatId,
            "session_id": self.sessionId,
            "memory_type": self.memoryType,
            "chat_type": _chat_types(self.chatType),
            "message_id": self.messageId,
            "start_date": self.startDate,
            "end_date": self.endDate,
        }


Filters = Annotated[MessageFilters, Depends()]


@router.get("/{chatflow_id}", dependencies=_HISTORY)
async def list_messages(
    chatflow_id: str, state: State, filters: Filters, order: str | None = None
) -> list[dict[str, Any]]:
    await _require_chatflow(state, chatflow_id)
    try:
        records = await state.messages.list(chatflow_id, order=_order(order), **filters.as_kwargs())
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return [record.to_json() for record in records]


@router.delete("/{chatflow_id}", dependencies=_HISTORY)
async def delete_messages(chatflow_id: str, state: State, filters: Filters) -> dict[str, Any]:
    await _require_chatflow(state, chatflow_id)
    try:
        removed = await state.messages.delete(chatflow_id, **filters.as_kwargs())
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return {"raw": [], "affected": removed}


class _AnyText(Convertor[str]):
    """Like `path`, whose ".*" stops at a newline: a chat id may hold any character."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anytext", _AnyText())


# A chat id may hold a "/" or a newline (ids come from clients), and every chat must be abortable.
@router.put("/abort/{chatflow_id}/{chat_id:anytext}", dependencies=[guard(Access.FLOW, "chatflow_id")])
async def abort(chatflow_id: str, chat_id: str, request: Request, state: State) -> Any:
    if request.headers.get("origin"):  # only a browser's request can be from a refused site
        record = await state.chatflows.get(chatflow_id)
        refused = None if record is None else refuse_origin(request, record)
        if refused is not None:
            return refused
    if state.remote is not None:  # the runs are on workers: ask whichever holds them to stop
        stopped = await state.remote.cancel_chat(chatflow_id, chat_id)
    else:
        stopped = state.runs.cancel_chat(chatflow_id, chat_id, "abort")
    return {"status": 200, "message": "Chat message aborted", "aborted": stopped}
