"""The chatflow cache: hits within the ttl, forgets on local writes, never caches absence, stays
within its byte budget, and prepares a chatflow again only when it changed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import cast

from streamwise.store import ChatflowCache, ChatflowRecord, ChatflowRepository

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class CountingRepository:
    def __init__(self) -> None:
        self.records: dict[str, ChatflowRecord] = {}
        self.reads = 0

    async def get(self, chatflow_id: str) -> ChatflowRecord | None:
        self.reads += 1
        return self.records.get(chatflow_id)


def record(chatflow_id: str, name: str, flow_data: str = "{}", version: int = 0) -> ChatflowRecord:
    return ChatflowRecord(
        id=chatflow_id,
        name=name,
        flowData=flow_data,
        deployed=None,
        isPublic=None,
        apikeyid=None,
        chatbotConfig=None,
        apiConfig=None,
        analytic=None,
        speechToText=None,
        followUpPrompts=None,
        category=None,
        type="CHATFLOW",
        createdDate=EPOCH,
        updatedDate=EPOCH + timedelta(seconds=version),
    )


class Preparer:
    """Stands in for the graph parser: counts its calls and returns the flowData's length."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, chatflow: ChatflowRecord) -> int:
        self.calls += 1
        return len(chatflow.flowData)


def make_cache(repository: CountingRepository, **options: float) -> tuple[ChatflowCache[int], Preparer]:
    prepare = Preparer()
    return ChatflowCache(cast(ChatflowRepository, repository), prepare, **options), prepare  # type: ignore[arg-type]


async def test_hits_within_the_ttl_and_rereads_after_forget() -> None:
    repository = CountingRepository()
    repository.records["a"] = record("a", "one")
    cache, _ = make_cache(repository, ttl=60)
    first = await cache.get("a")
    assert first is not None and first.record is repository.records["a"]
    await cache.get("a")
    assert repository.reads == 1
    repository.records["a"] = record("a", "two", version=1)
    cache.forget("a")
    fresh = await cache.get("a")
    assert fresh is not None and fresh.record.name == "two" and repository.reads == 2


async def test_expired_entries_are_read_again_but_prepared_again_only_when_changed() -> None:
    repository = CountingRepository()
    repository.records["a"] = record("a", "one", '{"v": 1}')
    cache, prepare = make_cache(repository, ttl=0)
    await cache.get("a")
    await cache.get("a")
    assert repository.reads == 2 and prepare.calls == 1
    repository.records["a"] = record("a", "one", '{"v": 22}', version=1)  # written by another process
    changed = await cache.get("a")
    assert changed is not None and changed.prepared == len('{"v": 22}') and prepare.calls == 2


async def test_absence_is_not_cached_and_size_is_bounded() -> None:
    repository = CountingRepository()
    cache, _ = make_cache(repository, ttl=60, size=2)
    assert await cache.get("late") is None
    repository.records["late"] = record("late", "now here")
    assert await cache.get("late") is not None
    for name in ("b", "c"):
        repository.records[name] = record(name, name)
        await cache.get(name)
    reads = repository.reads
    await cache.get("late")  # pushed out by b and c
    assert repository.reads == reads + 1


async def test_bytes_are_bounded_and_a_chatflow_bigger_than_the_budget_is_not_kept() -> None:
    repository = CountingRepository()
    budget = 3 * (100_000 + 1024)
    cache, _ = make_cache(repository, ttl=60, max_bytes=budget)
    for name in "abcde":
        repository.records[name] = record(name, name, "x" * 100_000)
        await cache.get(name)
    assert len(cache) == 3 and cache.bytes <= budget
    repository.records["huge"] = record("huge", "huge", "x" * (budget + 1))
    huge = await cache.get("huge")
    assert huge is not None and huge.prepared == budget + 1  # used once, not kept
    assert len(cache) == 3 and cache.bytes <= budget


async def test_a_deleted_chatflow_leaves_nothing_behind() -> None:
    repository = CountingRepository()
    repository.records["a"] = record("a", "one", "x" * 50_000)
    cache, _ = make_cache(repository, ttl=60)
    await cache.get("a")
    del repository.records["a"]
    cache.forget("a")
    assert len(cache) == 0 and cache.bytes == 0
    assert await cache.get("a") is None


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
    cache, prepare = make_cache(repository, ttl=60)
    waiters = [asyncio.ensure_future(cache.get("a")) for _ in range(50)]
    await asyncio.sleep(0.01)
    repository.release.set()
    async with asyncio.timeout(5):
        results = await asyncio.gather(*waiters)
    assert repository.reads == 1 and prepare.calls == 1
    assert all(result is not None and result.record is repository.records["a"] for result in results)


async def test_a_read_that_raced_a_write_is_not_kept() -> None:
    repository = SlowRepository()
    repository.records["a"] = record("a", "old")
    cache, _ = make_cache(repository, ttl=60)
    pending = asyncio.ensure_future(cache.get("a"))
    await asyncio.sleep(0.01)
    repository.records["a"] = record("a", "new", version=1)
    cache.forget("a")  # the write lands while the read is in flight
    repository.release.set()
    async with asyncio.timeout(5):
        await pending
        fresh = await cache.get("a")
    assert fresh is not None and fresh.record.name == "new" and repository.reads == 2
