"""Feedback on answers: what `/api/v1/feedback` adds, changes and lists.

One row per message at most, as in Flowise (`messageId` is unique). The API checks that the message
exists and belongs to the chatflow and chat named before it calls `add`.
"""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError

from streamwise.store.database import Database
from streamwise.store.dates import MonotonicClock, parse_bound, to_js_iso
from streamwise.store.tables import ChatMessage, ChatMessageFeedback

RATINGS = ("THUMBS_UP", "THUMBS_DOWN")

_clock = MonotonicClock()


class FeedbackExists(Exception):
    """The message already has feedback (change it with `update` instead)."""


@dataclass(frozen=True, slots=True)
class RatedMessage:
    """Where a message belongs, for checking what a feedback request names."""

    id: str
    chatflowid: str
    chatId: str


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    id: str
    chatflowid: str
    chatId: str
    messageId: str
    rating: str | None
    content: str | None
    createdDate: datetime

    def to_json(self) -> dict[str, Any]:
        """Flowise's JSON for a feedback row, the date as `...T..:..:..000Z`."""
        data: dict[str, Any] = {field.name: getattr(self, field.name) for field in fields(self)}
        data["createdDate"] = to_js_iso(self.createdDate)
        return data


class FeedbackRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, *, chatflow_id: str, chat_id: str, message_id: str, rating: str | None, content: str | None
    ) -> FeedbackRecord:
        """Store feedback on a message; raises `FeedbackExists` when the message has some already."""
        row = ChatMessageFeedback(
            id=str(uuid.uuid4()),
            chatflowid=chatflow_id,
            chatId=chat_id,
            messageId=message_id,
            rating=rating,
            content=content,
            createdDate=_clock.tick(),
        )
        record = _record(row)
        try:
            async with self._db.transaction() as session:
                session.add(row)
        except IntegrityError:
            raise FeedbackExists(message_id) from None
        return record

    async def message(self, message_id: str) -> RatedMessage | None:
        """The stored message with that id, of any chatflow."""
        query = select(ChatMessage.id, ChatMessage.chatflowid, ChatMessage.chatId).where(
            ChatMessage.id == message_id
        )
        async with self._db.session() as session:
            row = (await session.execute(query)).one_or_none()
            return None if row is None else RatedMessage(*row)

    async def get(self, feedback_id: str) -> FeedbackRecord | None:
        async with self._db.session() as session:
            row = await session.get(ChatMessageFeedback, feedback_id)
            return None if row is None else _record(row)

    async def for_message(self, message_id: str) -> FeedbackRecord | None:
        query = select(ChatMessageFeedback).where(ChatMessageFeedback.messageId == message_id)
        async with self._db.session() as session:
            row = (await session.scalars(query)).one_or_none()
            return None if row is None else _record(row)

    async def update(self, feedback_id: str, values: dict[str, str | None]) -> FeedbackRecord | None:
        """Change `rating` and/or `content`; None when there is no such feedback."""
        unknown = set(values) - {"rating", "content"}
        if unknown:
            raise ValueError(f"unknown feedback field(s): {', '.join(sorted(unknown))}")
        statement = (
            update(ChatMessageFeedback)
            .where(ChatMessageFeedback.id == feedback_id)
            .values(**values)
            .returning(ChatMessageFeedback)
            .execution_options(synchronize_session=False)
        )
        if not values:
            return await self.get(feedback_id)
        async with self._db.transaction() as session:
            row = (await session.scalars(statement)).one_or_none()
            return None if row is None else _record(row)

    async def list(
        self,
        chatflow_id: str,
        *,
        chat_id: str | None = None,
        order: str = "ASC",
        start_date: str | None = None,
        end_date: str | None = None,
    ) -> builtins.list[FeedbackRecord]:
        """A chatflow's feedback by date; dates are inclusive bounds (bad ones raise `ValueError`)."""
        conditions: builtins.list[ColumnElement[bool]] = [ChatMessageFeedback.chatflowid == chatflow_id]
        if chat_id is not None:
            conditions.append(ChatMessageFeedback.chatId == chat_id)
        start = parse_bound(start_date, end=False, name="startDate")
        end = parse_bound(end_date, end=True, name="endDate")
        if start is not None:
            conditions.append(ChatMessageFeedback.createdDate >= start)
        if end is not None:
            conditions.append(ChatMessageFeedback.createdDate <= end)
        column = ChatMessageFeedback.createdDate
        by_date = column.desc() if order.upper() == "DESC" else column.asc()
        query = select(ChatMessageFeedback).where(*conditions).order_by(by_date)
        async with self._db.session() as session:
            return [_record(row) for row in (await session.scalars(query)).all()]


def _record(row: ChatMessageFeedback) -> FeedbackRecord:
    return FeedbackRecord(**{field.name: getattr(row, field.name) for field in fields(FeedbackRecord)})
