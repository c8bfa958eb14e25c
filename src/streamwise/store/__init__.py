"""Storage: chatflows and chat messages in SQLite or PostgreSQL, behind small async repositories.

Open one `Database` per process (`async with Database.from_url(url) as db`), `await db.migrate()`
at startup, and hand `MessageRepository(db)` to the engine as its `MessageStore`.
"""

from __future__ import annotations

from streamwise.store.chatflow_cache import CachedChatflow, ChatflowCache
from streamwise.store.chatflows import (
    CHATFLOW_EDITABLE_FIELDS,
    DEFAULT_CHATFLOW_TYPE,
    ChatflowRecord,
    ChatflowRepository,
)
from streamwise.store.database import Database, to_async_url
from streamwise.store.dates import to_js_iso
from streamwise.store.feedback import RATINGS, FeedbackExists, FeedbackRecord, FeedbackRepository
from streamwise.store.messages import API_MESSAGE, USER_MESSAGE, MessageRecord, MessageRepository

__all__ = [
    "API_MESSAGE",
    "CHATFLOW_EDITABLE_FIELDS",
    "DEFAULT_CHATFLOW_TYPE",
    "RATINGS",
    "USER_MESSAGE",
    "CachedChatflow",
    "ChatflowCache",
    "ChatflowRecord",
    "ChatflowRepository",
    "Database",
    "FeedbackExists",
    "FeedbackRecord",
    "FeedbackRepository",
    "MessageRecord",
    "MessageRepository",
    "to_async_url",
    "to_js_iso",
]
