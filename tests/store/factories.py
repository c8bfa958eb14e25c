"""Builders for store tests: exchanges the way the engine makes them, rows with chosen dates."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from streamwise.engine.ports import Exchange, ExchangeStatus
from streamwise.store import Database
from streamwise.store.tables import ChatMessage


def make_exchange(
    chatflow_id: str,
    question: str = "hi",
    answer: str = "hello",
    *,
    session_id: str = "session",
    chat_id: str | None = None,
    status: ExchangeStatus = "complete",
    **extra: Any,
) -> Exchange:
    return Exchange(
        run_id=str(uuid.uuid4()),
        chatflow_id=chatflow_id,
        chat_id=chat_id if chat_id is not None else session_id,
        session_id=session_id,
        question=question,
        answer=answer,
        status=status,
        user_message_id=str(uuid.uuid4()),
        api_message_id=str(uuid.uuid4()),
        **extra,
    )


async def put_message(db: Database, chatflow_id: str, created: datetime, **columns: Any) -> str:
    """Store one row dated `created`, which `save_exchange` (dating rows now) cannot do."""
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "role": "userMessage",
        "chatflowid": chatflow_id,
        "content": "dated",
        "chatType": "EXTERNAL",
        "chatId": "dated",
        "sessionId": "dated",
        "createdDate": created,
        **columns,
    }
    async with db.transaction() as session:
        session.add(ChatMessage(**values))
    return str(values["id"])
