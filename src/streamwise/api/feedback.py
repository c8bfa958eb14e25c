"""/api/v1/feedback: thumbs up or down, and a comment, on an answer, as Flowise takes them.

    POST /api/v1/feedback              {chatflowid, chatId, messageId, rating, content}
    POST /api/v1/feedback/{chatflowId} the same; flowise-embed posts here
    GET  /api/v1/feedback/{chatflowId} ?chatId= &order=ASC|DESC &startDate= &endDate=
    PUT  /api/v1/feedback/{id}         {rating, content} (flowise-embed adds the comment this way)

As in Flowise, the message must exist (404) and belong to the chat and chatflow named (400). Unlike
Flowise, which leaves it to its chat UI, the server also takes feedback only for a chatflow whose
`chatbotConfig.chatFeedback.status` is true (400 otherwise). A message takes one feedback; a second
POST is a 409 (change it with PUT).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from streamwise.api.access import Access, authorize_flow, guard
from streamwise.api.body import read_fields
from streamwise.api.cors import chatbot_config, refuse_origin
from streamwise.api.state import AppState, State
from streamwise.errors import BadRequest, Conflict, NotFound
from streamwise.store import RATINGS, ChatflowRecord, FeedbackExists, FeedbackRepository

router = APIRouter(prefix="/api/v1/feedback")

MAX_CONTENT_CHARS = 10_000
_EDITABLE = ("rating", "content")
# The chatflow is the one of the message the body names: the handlers check its key themselves.
_BY_BODY = [guard(Access.FLOW)]


def feedback_enabled(record: ChatflowRecord) -> bool:
    settings = chatbot_config(record.chatbotConfig).get("chatFeedback")
    return isinstance(settings, dict) and settings.get("status") is True


async def _chatflow(state: AppState, chatflow_id: str) -> ChatflowRecord:
    record = await state.chatflows.get(chatflow_id)
    if record is None:
        raise NotFound(f"Chatflow {chatflow_id} not found")
    return record


def _text(fields: dict[str, Any], name: str, *, limit: int | None = None) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Field '{name}' must be a string")
    if limit is not None and len(value) > limit:
        raise BadRequest(f"Field '{name}' is longer than {limit} characters")
    return value


def _rating(fields: dict[str, Any]) -> str | None:
    rating = _text(fields, "rating")
    if rating is not None and rating not in RATINGS:
        raise BadRequest("Field 'rating' must be THUMBS_UP or THUMBS_DOWN")
    return rating


def _order(raw: str | None) -> str:
    value = (raw or "ASC").upper()
    if value not in {"ASC", "DESC"}:
        raise BadRequest("Query 'order' must be ASC or DESC")
    return value


async def _body(request: Request, state: AppState) -> dict[str, Any]:
    fields = await read_fields(request, state.body_limits)
    return dict(fields)


@router.post("", response_model=None, dependencies=_BY_BODY)
@router.post("/{chatflow_id}", response_model=None, dependencies=_BY_BODY)
async def add_feedback(request: Request, state: State, chatflow_id: str | None = None) -> Response:
    fields = await _body(request, state)
    message_id = _text(fields, "messageId")
    if message_id is None:
        raise BadRequest("Message ID is required")
    named_chatflow = _text(fields, "chatflowid") or chatflow_id
    named_chat = _text(fields, "chatId")
    rating = _rating(fields)
    content = _text(fields, "content", limit=MAX_CONTENT_CHARS)
    repository = FeedbackRepository(state.database)
    message = await repository.message(message_id)
    if message is None:
        raise NotFound(f"Message with ID {message_id} not found")
    if named_chat is not None and named_chat != message.chatId:
        raise BadRequest(f"Inconsistent chat ID: message {message_id} does not belong to chat {named_chat}")
    if named_chatflow is not None and named_chatflow != message.chatflowid:
        raise BadRequest(
            f"Inconsistent chatflow ID: message {message_id} does not belong to chatflow {named_chatflow}"
        )
    record = await _chatflow(state, message.chatflowid)
    await authorize_flow(request, state, record)
    refused = refuse_origin(request, record)
    if refused is not None:
        return refused
    if not feedback_enabled(record):
        raise BadRequest(f"Feedback is not enabled for chatflow {record.id}")
    try:
        added = await repository.add(
            chatflow_id=message.chatflowid,
            chat_id=message.chatId,
            message_id=message_id,
            rating=rating,
            content=content,
        )
    except FeedbackExists:
        raise Conflict(f"Message {message_id} already has feedback; change it with PUT") from None
    return JSONResponse(added.to_json())


@router.get("/{chatflow_id}", dependencies=[guard(Access.MANAGE_FLOW, "chatflow_id")])
async def list_feedback(
    chatflow_id: str,
    request: Request,
    state: State,
    chatId: str | None = None,
    order: str | None = None,
    sortOrder: str | None = None,
    startDate: str | None = None,
    endDate: str | None = None,
) -> Any:
    record = await _chatflow(state, chatflow_id)
    refused = refuse_origin(request, record)
    if refused is not None:
        return refused
    # Both names are checked, whichever wins: a malformed one is refused, never silently ignored.
    chosen = _order(order) if order else None
    fallback = _order(sortOrder) if sortOrder else None
    repository = FeedbackRepository(state.database)
    try:
        found = await repository.list(
            chatflow_id,
            chat_id=chatId,
            order=chosen or fallback or "ASC",
            start_date=startDate,
            end_date=endDate,
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return [item.to_json() for item in found]


@router.put("/{feedback_id}", response_model=None, dependencies=_BY_BODY)
async def change_feedback(feedback_id: str, request: Request, state: State) -> Response:
    fields = await _body(request, state)
    repository = FeedbackRepository(state.database)
    existing = await repository.get(feedback_id)
    if existing is None:
        raise NotFound(f"Feedback with ID {feedback_id} not found")
    for name, held in (("messageId", existing.messageId), ("chatId", existing.chatId)):
        named = _text(fields, name)
        if named is not None and named != held:
            raise BadRequest(f"Inconsistent {name}: feedback {feedback_id} is on {held}")
    named_chatflow = _text(fields, "chatflowid")
    if named_chatflow is not None and named_chatflow != existing.chatflowid:
        raise BadRequest(f"Inconsistent chatflowid: feedback {feedback_id} is on {existing.chatflowid}")
    changes: dict[str, str | None] = {}
    if "rating" in fields:
        changes["rating"] = _rating(fields)
    if "content" in fields:
        changes["content"] = _text(fields, "content", limit=MAX_CONTENT_CHARS)
    record = await state.chatflows.get(existing.chatflowid)
    if record is not None:
        await authorize_flow(request, state, record)
        refused = refuse_origin(request, record)
        if refused is not None:
            return refused
        if not feedback_enabled(record):
            raise BadRequest(f"Feedback is not enabled for chatflow {record.id}")
    if await repository.update(feedback_id, changes) is None:
        raise NotFound(f"Feedback with ID {feedback_id} not found")
    return JSONResponse({"status": "OK"})
