"""Chatflow records: what `/api/v1/chatflows` reads and writes, and what the engine runs.

The repository takes values the API has already checked (flowData is validated by the engine);
it only refuses field names and value types that would otherwise fail deep inside the database,
so a programming mistake surfaces as a `ValueError` naming the field.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update

from streamwise.store.database import Database
from streamwise.store.dates import MonotonicClock, to_js_iso
from streamwise.store.tables import ChatFlow, ChatMessage

DEFAULT_CHATFLOW_TYPE = "CHATFLOW"

_TEXT_FIELDS = frozenset(
    {"apikeyid", "chatbotConfig", "apiConfig", "analytic", "speechToText", "followUpPrompts", "category"}
)
_REQUIRED_TEXT_FIELDS = frozenset({"name", "flowData", "type"})
_BOOL_FIELDS = frozenset({"deployed", "isPublic"})

# What a caller may set. `id` may also be chosen on create; the dates are always the store's.
CHATFLOW_EDITABLE_FIELDS: frozenset[str] = _TEXT_FIELDS | _REQUIRED_TEXT_FIELDS | _BOOL_FIELDS

# Chatflows created in one burst still list in creation order.
_clock = MonotonicClock()


@dataclass(frozen=True, slots=True)
class ChatflowRecord:
    id: str
    name: str
    flowData: str
    deployed: bool | None
    isPublic: bool | None
    apikeyid: str | None
    chatbotConfig: str | None
    apiConfig: str | None
    analytic: str | None
    speechToText: str | None
    followUpPrompts: str | None
    category: str | None
    type: str
    createdDate: datetime
    updatedDate: datetime

    def to_json(self) -> dict[str, Any]:
        """Flowise's JSON for a chatflow: every column, nulls included, dates as `...T..:..:..000Z`."""
        data: dict[str, Any] = {field.name: getattr(self, field.name) for field in fields(self)}
        data["createdDate"] = to_js_iso(self.createdDate)
        data["updatedDate"] = to_js_iso(self.updatedDate)
        return data


class ChatflowRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, values: Mapping[str, object]) -> ChatflowRecord:
        """Store a new chatflow; `name` and `flowData` are required, `id` defaults to a new UUID."""
        checked = _checked(values, allowed=CHATFLOW_EDITABLE_FIELDS | {"id"})
        for required in ("name", "flowData"):
            if required not in checked:
                raise ValueError(f"chatflow field {required!r} is required")
        chatflow_id = checked.pop("id", None) or str(uuid.uuid4())
        checked.setdefault("type", DEFAULT_CHATFLOW_TYPE)
        now = _clock.tick()
        row = ChatFlow(id=chatflow_id, createdDate=now, updatedDate=now, **checked)
        async with self._db.transaction() as session:
            session.add(row)
        return _record(row)

    async def get(self, chatflow_id: str) -> ChatflowRecord | None:
        async with self._db.session() as session:
            row = await session.get(ChatFlow, chatflow_id)
            return None if row is None else _record(row)

    async def list(self, *, flow_type: str | None = None) -> builtins.list[ChatflowRecord]:
        """All chatflows, oldest first (Flowise returns them all, unpaged); optionally of one `type`."""
        query = select(ChatFlow).order_by(ChatFlow.createdDate, ChatFlow.id)
        if flow_type is not None:
            query = query.where(ChatFlow.type == flow_type)
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
            return [_record(row) for row in rows]

    async def update(self, chatflow_id: str, values: Mapping[str, object]) -> ChatflowRecord | None:
        """Change the given fields (and `updatedDate`); None when there is no such chatflow.

        One UPDATE ... RETURNING, so SQLite never has to upgrade a read lock to a write lock.
        """
        checked = _checked(values, allowed=CHATFLOW_EDITABLE_FIELDS)
        statement = (
            update(ChatFlow)
            .where(ChatFlow.id == chatflow_id)
            .values(**checked, updatedDate=_clock.tick())
            .returning(ChatFlow)
            .execution_options(synchronize_session=False)
        )
        async with self._db.transaction() as session:
            row = (await session.scalars(statement)).one_or_none()
            return None if row is None else _record(row)

    async def delete(self, chatflow_id: str) -> bool:
        """Remove a chatflow and all its messages together; False when there was no such chatflow."""
        async with self._db.transaction() as session:
            removed = await session.execute(
                delete(ChatFlow)
                .where(ChatFlow.id == chatflow_id)
                .execution_options(synchronize_session=False)
            )
            await session.execute(
                delete(ChatMessage)
                .where(ChatMessage.chatflowid == chatflow_id)
                .execution_options(synchronize_session=False)
            )
            return cast(CursorResult[Any], removed).rowcount > 0

    async def count(self) -> int:
        async with self._db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(ChatFlow)) or 0)


def _checked(values: Mapping[str, object], *, allowed: frozenset[str]) -> dict[str, Any]:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"unknown chatflow field(s): {', '.join(unknown)}")
    for name, value in values.items():
        if name in _BOOL_FIELDS:
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"chatflow field {name!r} must be a boolean or null")
        elif name in _REQUIRED_TEXT_FIELDS:
            if not isinstance(value, str):
                raise ValueError(f"chatflow field {name!r} must be a string")
        elif value is not None and not isinstance(value, str):
            raise ValueError(f"chatflow field {name!r} must be a string or null")
    return dict(values)


def _record(row: ChatFlow) -> ChatflowRecord:
    return ChatflowRecord(**{field.name: getattr(row, field.name) for field in fields(ChatflowRecord)})
