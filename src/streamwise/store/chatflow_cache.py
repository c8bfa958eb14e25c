"""A short-lived, bounded in-process cache of chatflow records, for the prediction hot path.

Reading a chatflow costs about a millisecond (a database round trip through a worker thread); a
prediction needs it before its first token. Concurrent misses for one chatflow share a single read,
so a burst of requests does not queue up behind as many database round trips. Writes made through
this process drop their entry at once; a write made by another process is seen within `ttl` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from streamwise.store.chatflows import ChatflowRecord, ChatflowRepository


class ChatflowCache:
    def __init__(self, repository: ChatflowRepository, *, ttl: float = 2.0, size: int = 1024) -> None:
        self.repository = repository
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[float, ChatflowRecord]] = OrderedDict()
        self._reads: dict[str, asyncio.Task[ChatflowRecord | None]] = {}
        self._generation = 0  # bumped by `forget`, so a read that raced a write is not kept

    async def get(self, chatflow_id: str) -> ChatflowRecord | None:
        entry = self._entries.get(chatflow_id)
        if entry is not None and time.monotonic() - entry[0] < self.ttl:
            self._entries.move_to_end(chatflow_id)
            return entry[1]
        read = self._reads.get(chatflow_id)
        if read is None:
            read = asyncio.ensure_future(self._read(chatflow_id, self._generation))
            self._reads[chatflow_id] = read
            read.add_done_callback(lambda _: self._reads.pop(chatflow_id, None))
        # Shielded: one caller giving up must not cancel the read the others are waiting for.
        return await asyncio.shield(read)

    async def _read(self, chatflow_id: str, generation: int) -> ChatflowRecord | None:
        started = time.monotonic()
        record = await self.repository.get(chatflow_id)
        if record is None or generation != self._generation:
            # Absence is never cached: a chatflow created elsewhere must work at once.
            self._entries.pop(chatflow_id, None)
            return record
        self._entries[chatflow_id] = (started, record)
        self._entries.move_to_end(chatflow_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return record

    def forget(self, chatflow_id: str) -> None:
        self._entries.pop(chatflow_id, None)
        self._generation += 1
