"""Stored chat messages: what memory nodes read back and what `/api/v1/chatmessage` lists and deletes.

Each exchange is two rows, a `userMessage` and an `apiMessage`, written together in one transaction
as its run starts, with status "running"; the answer is saved as it grows, and both rows are written
again when the run ends, however it ends. `status` says whether the answer is complete, aborted, cut
short by an error, or interrupted by a crash, so a partial answer is kept rather than lost. Running
exchanges are left out of memory (`history`) until they end.
"""

from __future__ import annotations

import builtins
import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, Literal, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Executable,
    Insert,
    Integer,
    and_,
    bindparam,
    case,
    delete,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import Table

from streamwise.engine.ports import ChatTurn, Exchange, Role
from streamwise.store.database import Database
from streamwise.store.dates import MonotonicClock, parse_bound, to_js_iso
from streamwise.store.hot_path import Busy
from streamwise.store.tables import ChatMessage

USER_MESSAGE = "userMessage"
API_MESSAGE = "apiMessage"

MessageRole = Literal["userMessage", "apiMessage"]
DateFilter = str | datetime | date | None

# Columns holding JSON text, parsed back into values on the way out like Flowise's parseAPIResponse.
JSON_FIELDS = (
    "sourceDocuments",
    "usedTools",
    "fileAnnotations",
    "agentReasoning",
    "fileUploads",
    "artifacts",
    "action",
)

_TURN_ROLES: dict[str, Role] = {USER_MESSAGE: "user", API_MESSAGE: "assistant"}

_clock = MonotonicClock()

# Only a row still "running" takes a partial answer: one that ended meanwhile keeps its final text.
# On the table (Core), not the class: an executemany of an ORM update would be a bulk update by key.
_MESSAGES = cast(Table, ChatMessage.__table__)
_SAVE_PARTIAL = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("message_id"), _MESSAGES.c.status == "running")
    .values(content=bindparam("text"))
)
_INSERT = insert(_MESSAGES)
# Memory's read, built once (it runs before every answer's first token): the newest turns first.
_NO_LIMIT = 2**31 - 1
_HISTORY = (
    select(_MESSAGES.c.role, _MESSAGES.c.content)
    .where(
        _MESSAGES.c.chatflowid == bindparam("chatflow_id"),
        _MESSAGES.c.sessionId == bindparam("session_id"),
        _MESSAGES.c.status != "running",
        not_(and_(_MESSAGES.c.role == API_MESSAGE, _MESSAGES.c.content == "")),
    )
    .order_by(_MESSAGES.c.createdDate.desc())
    .limit(bindparam("limit", type_=Integer))
)
# What a finished exchange may change in rows that `begin_exchange` wrote.
_FINAL_COLUMNS = ("content", "status", "sourceDocuments", "usedTools", "memoryType", "instanceId")
_UPSERTS: dict[str, Insert] = {}


def _upsert(dialect: str) -> Insert:
    statement = _UPSERTS.get(dialect)
    if statement is None:
        if dialect == "postgresql":
            pg = postgresql.insert(ChatMessage)
            statement = pg.on_conflict_do_update(
                index_elements=[ChatMessage.id], set_={name: pg.excluded[name] for name in _FINAL_COLUMNS}
            )
        else:
            lite = sqlite.insert(ChatMessage)
            statement = lite.on_conflict_do_update(
                index_elements=[ChatMessage.id], set_={name: lite.excluded[name] for name in _FINAL_COLUMNS}
            )
        _UPSERTS[dialect] = statement
    return statement


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: str
    role: str
    chatflowid: str
    content: str
    sourceDocuments: str | None
    usedTools: str | None
    fileAnnotations: str | None
    agentReasoning: str | None
    fileUploads: str | None
    artifacts: str | None
    action: str | None
    chatType: str
    chatId: str
    memoryType: str | None
    sessionId: str | None
    createdDate: datetime
    leadEmail: str | None
    followUpPrompts: str | None
    status: str
    runId: str | None

    def to_json(self) -> dict[str, Any]:
        """Flowise's JSON for a message: JSON columns parsed, the date as `...T..:..:..000Z`.

        Text that is not valid JSON is passed through as it is rather than failing the whole list.
        """
        data: dict[str, Any] = {field.name: getattr(self, field.name) for field in fields(self)}
        for name in JSON_FIELDS:
            raw = data[name]
            if raw:
                with contextlib.suppress(json.JSONDecodeError):
                    data[name] = json.loads(raw)
        data["createdDate"] = to_js_iso(self.createdDate)
        return data


class MessageRepository:
    """Implements the engine's `MessageStore` (and so `HistoryReader`).

    `instance_id` names this server process on the rows of the exchanges it runs, so recovery can
    tell them from those of a process that died (see `store/instances.py`).
    """

    def __init__(self, db: Database, *, instance_id: str | None = None) -> None:
        self._db = db
        self.instance_id = instance_id

    def _rows(self, exchange: Exchange, *, running: bool) -> list[dict[str, Any]]:
        """The question row and the answer row, dated now: the answer at least 1 ms after the question.

        The dates come from a process-wide monotonic clock, so exchanges begun by this process sort in
        the order they began, and a question always sorts before its own answer, on any backend.
        """
        shared = {
            "chatflowid": exchange.chatflow_id,
            "chatType": exchange.chat_type,
            "chatId": exchange.chat_id,
            "memoryType": exchange.memory_type,
            "sessionId": exchange.session_id,
            "runId": exchange.run_id,
            "instanceId": self.instance_id if running else None,
        }
        question = {
            "id": exchange.user_message_id,
            "role": USER_MESSAGE,
            "content": exchange.question,
            "sourceDocuments": None,
            "usedTools": None,
            "createdDate": _clock.tick(),
            "status": "running" if running else "complete",
            **shared,
        }
        answer = {
            "id": exchange.api_message_id,
            "role": API_MESSAGE,
            "content": exchange.answer,
            "sourceDocuments": _json_text(exchange.source_documents),
            "usedTools": _json_text(exchange.used_tools),
            "createdDate": _clock.tick(),
            "status": exchange.status,
            **shared,
        }
        return [question, answer]

    async def _write(self, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
        """One statement for many rows in one transaction: on the hot path when SQLite allows."""
        hot = self._db.hot
        if hot is not None:
            try:
                hot.write(statement, rows)
                return
            except Busy:
                pass  # another connection is writing: wait for it in the async engine's thread
        async with self._db.transaction() as session:
            await session.execute(statement, list(rows))

    async def begin_exchange(self, exchange: Exchange) -> None:
        """Store the question and the answer so far, both "running" (left out of memory until done)."""
        # A bulk INSERT of plain rows skips the ORM's unit of work: this runs once per question.
        await self._write(_INSERT, self._rows(exchange, running=True))

    async def save_partials(self, answers: Sequence[tuple[str, str]]) -> None:
        """Save the answers of running exchanges as they grow, all in one transaction."""
        if answers:
            await self._write(_SAVE_PARTIAL, [{"message_id": m, "text": text} for m, text in answers])

    async def save_exchange(self, exchange: Exchange) -> None:
        """Store the exchange as it ended: both rows, inserted, or replaced if `begin_exchange` landed.

        A replaced row keeps its date, so exchanges keep the order in which they began.
        """
        rows = self._rows(exchange, running=exchange.status == "running")
        await self._write(_upsert(self._db.dialect), rows)

    async def mark_interrupted(self, live_instances: Sequence[str]) -> int:
        """Exchanges left "running" by a process not in `live_instances` ended with it: mark them
        "interrupted" (the question "complete"), keeping the answer saved so far. Returns the number
        of rows changed (two per exchange)."""
        orphaned = and_(
            ChatMessage.status == "running",
            or_(ChatMessage.instanceId.is_(None), ChatMessage.instanceId.not_in(list(live_instances))),
        )
        status = case((ChatMessage.role == API_MESSAGE, "interrupted"), else_="complete")
        statement = (
            update(ChatMessage)
            .where(orphaned)
            .values(status=status, instanceId=None)
            .execution_options(synchronize_session=False)
        )
        async with self._db.transaction() as session:
            result = cast(CursorResult[Any], await session.execute(statement))
            return result.rowcount

    async def history(
        self, chatflow_id: str, session_id: str, *, limit: int | None = None
    ) -> builtins.list[ChatTurn]:
        """Earlier turns of one session, oldest first; answers that came out empty are left out.

        `limit` keeps only the newest turns, for windowed memory that need not read a long session.
        """
        params = {
            "chatflow_id": chatflow_id,
            "session_id": session_id,
            "limit": max(limit, 0) if limit is not None else _NO_LIMIT,
        }
        rows: Sequence[Any] | None = None
        if self._db.hot is not None:
            with contextlib.suppress(Busy):
                rows = self._db.hot.read(_HISTORY, params)
        if rows is None:
            async with self._db.session() as session:
                rows = (await session.execute(_HISTORY, params)).all()
        return [ChatTurn(_TURN_ROLES.get(role, "user"), content) for role, content in reversed(rows)]

    async def list(
        self,
        chatflow_id: str,
        *,
        chat_id: str | None = None,
        session_id: str | None = None,
        memory_type: str | None = None,
        chat_type: str | Sequence[str] | None = None,
        order: str = "ASC",
        start_date: DateFilter = None,
        end_date: DateFilter = None,
        message_id: str | None = None,
        run_id: str | None = None,
    ) -> builtins.list[MessageRecord]:
        """Messages of a chatflow matching every given filter, by date (`order` "ASC" or "DESC").

        Dates are inclusive; a date without a time covers the whole day. Bad `order` or dates raise
        `ValueError`.
        """
        direction = order.upper()
        if direction not in ("ASC", "DESC"):
            raise ValueError(f"order must be ASC or DESC, got {order!r}")
        conditions = _conditions(
            chatflow_id, chat_id, session_id, memory_type, chat_type, start_date, end_date, message_id, run_id
        )
        by_date = ChatMessage.createdDate.asc() if direction == "ASC" else ChatMessage.createdDate.desc()
        query = select(ChatMessage).where(*conditions).order_by(by_date)
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
            return [_record(row) for row in rows]

    async def delete(
        self,
        chatflow_id: str,
        *,
        chat_id: str | None = None,
        session_id: str | None = None,
        memory_type: str | None = None,
        chat_type: str | Sequence[str] | None = None,
        start_date: DateFilter = None,
        end_date: DateFilter = None,
        message_id: str | None = None,
        run_id: str | None = None,
    ) -> int:
        """Remove the messages `list` would return for the same filters; returns how many went."""
        conditions = _conditions(
            chatflow_id, chat_id, session_id, memory_type, chat_type, start_date, end_date, message_id, run_id
        )
        statement = delete(ChatMessage).where(*conditions).execution_options(synchronize_session=False)
        async with self._db.transaction() as session:
            result = cast(CursorResult[Any], await session.execute(statement))
            return result.rowcount


def _conditions(
    chatflow_id: str,
    chat_id: str | None,
    session_id: str | None,
    memory_type: str | None,
    chat_type: str | Sequence[str] | None,
    start_date: DateFilter,
    end_date: DateFilter,
    message_id: str | None,
    run_id: str | None,
) -> builtins.list[ColumnElement[bool]]:
    conditions: builtins.list[ColumnElement[bool]] = [ChatMessage.chatflowid == chatflow_id]
    for column, value in (
        (ChatMessage.chatId, chat_id),
        (ChatMessage.sessionId, session_id),
        (ChatMessage.memoryType, memory_type),
        (ChatMessage.id, message_id),
        (ChatMessage.runId, run_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if isinstance(chat_type, str):
        conditions.append(ChatMessage.chatType == chat_type)
    elif chat_type is not None:
        conditions.append(ChatMessage.chatType.in_(list(chat_type)))
    start = parse_bound(start_date, end=False, name="startDate")
    end = parse_bound(end_date, end=True, name="endDate")
    if start is not None:
        conditions.append(ChatMessage.createdDate >= start)
    if end is not None:
        conditions.append(ChatMessage.createdDate <= end)
    return conditions


def _json_text(value: builtins.list[dict[str, Any]] | None) -> str | None:
    """Compact JSON like JavaScript's JSON.stringify; nothing is stored for an empty list, as in Flowise."""
    if not value:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _record(row: ChatMessage) -> MessageRecord:
    return MessageRecord(**{field.name: getattr(row, field.name) for field in fields(MessageRecord)})
