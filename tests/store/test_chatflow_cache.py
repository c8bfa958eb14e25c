"""The chatflow cache: hits within the ttl, forgets on local writes, never caches absence."""

from __future__ import annotations

import asyncio
from typing import cast

from streamwise.store import ChatflowCache, ChatflowRecord, ChatflowRepository


class CountingRepository:
    def __init__(self) -> None:
        self.records: dict[str, ChatflowRecord] = {}
        self.reads = 0

    async def get(self, chatflow_id: str) -> ChatflowRecord | None:
        self.reads += 1
        return self.records.get(chatflow_id)


def record(chatflow_id: str, name: str) -> ChatflowRecord:
    return cast(ChatflowRecord, type("R", (), {"id": chatflow_id, "name": name})())


async def test_hits_within_the_ttl_and_rereads_after_forget() -> None:
    repository = CountingRepository()
    repository.records["a"] = record("a", "one")
    cache = ChatflowCache(cast(ChatflowRepository, repository), ttl=60)
    assert (await cache.get("a")) is repository.records["a"]
    await cache.get("a")
    assert repository.reads == 1
    repository.records["a"] = record("a", "two")
    cache.forget("a")
    fresh = await cache.get("a")
    assert fresh is not None and fresh.name == "two" and repository.reads == 2


async def test_expired_entries_are_read_again() -> None:
    repository = CountingRepository()
    repository.records["a"] = record("a", "one")
    cache = ChatflowCache(cast(ChatflowRepository, repository), ttl=0)
    await cache.get("a")
    await cache.get("a")
    assert repository.reads == 2


async def test_absence_is_not_cached_and_size_is_bounded() -> None:
    repository = CountingRepository()
    cache = ChatflowCache(cast(ChatflowRepository, repository), ttl=60, size=2)
    assert await cache.get("late") is None
    repository.records["late"] = record("late", "now here")
    assert await cache.get("late") is not None
    for name in ("b", "c"):
        repository.records[name] = record(name, name)
        await cache.get(name)
    reads = repository.reads
    await cache.get("late")  # pushed out by b and c
    assert repository.reads == reads + 1


class SlowRepository(CountingRepository):
    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def get(self, chatflow_id: str) -> ChatflowRecord | None:
        self.reads += 1
        await self.release.wait()
        return self.records.get(chatflow_id)


async def test_concurrent_misses_share_one_read() -> None:
    repository = SlowRepository()
    repository.records["a"] = record("a", "one")
    cache = ChatflowCache(cast(ChatflowRepository, repository), ttl=60)
    waiters = [asyncio.ensure_future(cache.get("a")) for _ in range(50)]
    await asyncio.sleep(0.01)
    repository.release.set()
    async with asyncio.timeout(5):
        results = await asyncio.gather(*waiters)
    assert repository.reads == 1 and all(result is repository.records["a"] for result in results)


async def test_a_read_that_raced_a_write_is_not_kept() -> None:
    repository = SlowRepository()
    repository.records["a"] = record("a", "old")
    cache = ChatflowCache(cast(ChatflowRepository, repository), ttl=60)
    pending = asyncio.ensure_future(cache.get("a"))
    await asyncio.sleep(0.01)
    repository.records["a"] = record("a", "new")
    cache.forget("a")  # the write lands while the read is in flight
    repository.release.set()
    async with asyncio.timeout(5):
        await pending
        fresh = await cache.get("a")
    assert fresh is not None and fresh.name == "new" and repository.reads == 2
