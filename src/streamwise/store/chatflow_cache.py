"""A short-lived, bounded in-process cache of chatflow records, for the prediction hot path.

Reading a chatflow costs about a millisecond (a database round trip through a worker thread); a
prediction needs it before its first token. Writes made through this process drop their entry at
once; a write made by another process is seen within `ttl` seconds.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from streamwise.store.chatflows import ChatflowRecord, ChatflowRepository


class ChatflowCache:
    def __init__(self, repository: ChatflowRepository, *, ttl: float = 2.0, size: int = 1024) -> None:
        self.repository = repository
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[float, ChatflowRecord]] = OrderedDict()

    async def get(self, chatflow_id: str) -> ChatflowRecord | None:
        now = time.monotonic()
        entry = self._entries.get(chatflow_id)
        if entry is not None and now - entry[0] < self.ttl:
            self._entries.move_to_end(chatflow_id)
            return entry[1]
        record = await self.repository.get(chatflow_id)
        if record is None:  # never cache absence: a chatflow created elsewhere must work at once
            self._entries.pop(chatflow_id, None)
            return None
        self._entries[chatflow_id] = (now, record)
        self._entries.move_to_end(chatflow_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return record

    def forget(self, chatflow_id: str) -> None:
        self._entries.pop(chatflow_id, None)
