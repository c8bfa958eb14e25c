"""A short-lived, bounded in-process cache of chatflow records and what was made of them.

Reading a chatflow costs about a millisecond (a database round trip through a worker thread), and
parsing its flowData more; a prediction needs both before its first token. So an entry holds the
record and the value `prepare` made of it (the parsed graph). Concurrent misses for one chatflow share
a single read. Writes made through this process drop their entry at once (`forget`); a write made by
another process is seen within `ttl` seconds: after the ttl the record is read again, and prepared
again only when its `updatedDate` changed.

The cache is bounded by entries and by bytes (the flowData text of each entry, which the prepared
graph roughly mirrors), so big chatflows cannot pile up in memory; one larger than the whole budget
is prepared and used but not kept.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from streamwise.store.chatflows import ChatflowRecord, ChatflowRepository

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CachedChatflow(Generic[T]):
    record: ChatflowRecord
    prepared: T


@dataclass(slots=True)
class _Entry(Generic[T]):
    read_at: float
    value: CachedChatflow[T]
    weight: int


def _weight(record: ChatflowRecord) -> int:
    return len(record.flowData) + 1024  # the record's other fields, roughly


class ChatflowCache(Generic[T]):
    def __init__(
        self,
        repository: ChatflowRepository,
        prepare: Callable[[ChatflowRecord], Awaitable[T]],
        *,
        ttl: float = 2.0,
        size: int = 1024,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.repository = repository
        self.prepare = prepare
        self.ttl = ttl
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()
        self._reads: dict[str, asyncio.Task[CachedChatflow[T] | None]] = {}
        self._generation = 0  # bumped by `forget`, so a read that raced a write is not kept

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, chatflow_id: str) -> CachedChatflow[T] | None:
        entry = self._entries.get(chatflow_id)
        if entry is not None and time.monotonic() - entry.read_at < self.ttl:
            self._entries.move_to_end(chatflow_id)
            return entry.value
        read = self._reads.get(chatflow_id)
        if read is None:
            read = asyncio.ensure_future(self._read(chatflow_id, self._generation))
            self._reads[chatflow_id] = read
            read.add_done_callback(lambda _: self._reads.pop(chatflow_id, None))
        # Shielded: one caller giving up must not cancel the read the others are waiting for.
        return await asyncio.shield(read)

    async def _read(self, chatflow_id: str, generation: int) -> CachedChatflow[T] | None:
        started = time.monotonic()
        record = await self.repository.get(chatflow_id)
        if record is None:
            self._drop(chatflow_id)  # absence is never cached: a chatflow created elsewhere works at once
            return None
        old = self._entries.get(chatflow_id)
        if (
            old is not None
            and old.value.record.updatedDate == record.updatedDate
            and old.value.record.flowData == record.flowData
        ):
            value = CachedChatflow(record, old.value.prepared)
        else:
            value = CachedChatflow(record, await self.prepare(record))
        if generation != self._generation:
            return value  # a write landed meanwhile: use this once, keep nothing
        self._drop(chatflow_id)
        weight = _weight(record)
        if self.size > 0 and weight <= self.max_bytes:
            self._entries[chatflow_id] = _Entry(started, value, weight)
            self.bytes += weight
        while self._entries and (len(self._entries) > self.size or self.bytes > self.max_bytes):
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.weight
        return value

    def _drop(self, chatflow_id: str) -> None:
        entry = self._entries.pop(chatflow_id, None)
        if entry is not None:
            self.bytes -= entry.weight

    def forget(self, chatflow_id: str) -> None:
        self._drop(chatflow_id)
        self._generation += 1
