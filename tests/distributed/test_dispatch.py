"""The job queue against real Redis: exactly-once takes within slots, leases, take-overs, no leaks."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from uuid import uuid4

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamwise.distributed.dispatch import Consumer, Job, JobQueue, consumer_name
from streamwise.distributed.keys import Keys
from tests.support.redis import REDIS_URL

GROUP = "workers"


@pytest.fixture
def queue(redis: aioredis.Redis, keys: Keys) -> JobQueue:
    return JobQueue(redis, keys)


async def _pending(redis: aioredis.Redis, keys: Keys, consumer: str | None = None) -> list[str]:
    """The entry ids pending in the group (under `consumer`, if given)."""
    rows = await redis.xpending_range(keys.jobs, GROUP, "-", "+", 10_000, consumername=consumer)
    return [str(row["message_id"], "ascii") for row in rows]  # type: ignore[arg-type]


async def _consumers(redis: aioredis.Redis, keys: Keys) -> list[str]:
    return [str(info["name"], "utf-8") for info in await redis.xinfo_consumers(keys.jobs, GROUP)]


async def _assert_nothing_left(redis: aioredis.Redis, keys: Keys) -> None:
    assert await _pending(redis, keys) == []
    assert (await redis.xpending(keys.jobs, GROUP))["pending"] == 0
    assert await _consumers(redis, keys) == []
    assert await redis.xlen(keys.jobs) == 0
    assert [key async for key in redis.scan_iter(match=keys.pattern())] == [keys.jobs.encode()]
    [group] = await redis.xinfo_groups(keys.jobs)
    assert group["pending"] == 0 and group["consumers"] == 0


async def test_jobs_are_taken_exactly_once_and_never_beyond_the_slots(
    redis: aioredis.Redis, keys: Keys, queue: JobQueue
) -> None:
    n, slots = 200, 5
    for i in range(n):
        await queue.submit(f"run-{i}", f"payload-{i}".encode())
    taken: list[str] = []
    most_pending: dict[str, int] = {}

    async def worker(name: str) -> None:
        running: set[asyncio.Task[None]] = set()

        async def run(consumer: Consumer, job: Job) -> None:
            await asyncio.sleep(random.uniform(0, 0.01))
            assert await consumer.ack(job)

        async with queue.consumer(name, slots=slots, lease_ms=30_000, block_ms=100) as consumer:
            while len(taken) < n or running:
                if consumer.free_slots == 0:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                # Asking for more than is free still gets no more than the free slots.
                jobs = await consumer.take(consumer.free_slots + 3)
                for job in jobs:
                    assert job.payload == f"payload-{job.run_id.removeprefix('run-')}".encode()
                    assert job.deliveries == 1
                    taken.append(job.run_id)
                    task = asyncio.create_task(run(consumer, job))
                    running.add(task)
                    task.add_done_callback(running.discard)
                assert consumer.held <= slots
                pending = await _pending(redis, keys, name)  # what Redis holds for it, acks in flight too
                assert len(pending) <= slots
                most_pending[name] = max(most_pending.get(name, 0), len(pending))

    async with asyncio.timeout(60):
        await asyncio.gather(*(worker(f"worker-{i}") for i in range(3)))
    assert Counter(taken) == Counter(f"run-{i}" for i in range(n))
    assert max(most_pending.values()) == slots  # they did fill up, and never went past
    await _assert_nothing_left(redis, keys)


async def test_a_dead_consumers_job_is_reclaimed_after_the_lease_and_the_dead_one_is_fenced(
    redis: aioredis.Redis, keys: Keys, queue: JobQueue
) -> None:
    entry_id = await queue.submit("run-1", b"one")
    await queue.ensure_group()
    dead = Consumer(queue, "dead", slots=1, lease_ms=300, block_ms=100)  # never closed: it "dies"
    [job] = await dead.take(1)
    assert (job.entry_id, job.run_id, job.payload, job.deliveries) == (entry_id, "run-1", b"one", 1)
    async with (
        asyncio.timeout(10),
        queue.consumer("alive", slots=2, lease_ms=300, forget_idle_ms=300) as alive,
    ):
        assert await alive.reclaim() == []  # not idle long enough yet
        await asyncio.sleep(0.4)
        [again] = await alive.reclaim()
        assert (again.entry_id, again.run_id, again.payload, again.deliveries) == (
            entry_id,
            "run-1",
            b"one",
            2,
        )
        assert await _pending(redis, keys, "alive") == [entry_id]
        # The dead one wakes up: it can neither renew nor acknowledge what is no longer its own.
        assert not await dead.renew(job)
        assert not await dead.ack(job)
        assert await _pending(redis, keys, "alive") == [entry_id]
        # Past the lease again, it is taken over again, and counted again (a retry limit's input).
        await asyncio.sleep(0.4)
        async with queue.consumer("third", slots=1, lease_ms=300) as third:
            [thrice] = await third.reclaim()
            assert thrice.deliveries == 3
            assert not await alive.renew(again)
            assert alive.held == 0
            assert await third.ack(thrice)
        # "dead" has nothing pending and has been idle past forget_idle_ms: a reclaim deletes it.
        await asyncio.sleep(0.35)
        assert await alive.reclaim() == []
        assert await _consumers(redis, keys) == ["alive"]
    await _assert_nothing_left(redis, keys)


async def test_a_renewing_consumer_keeps_its_job(redis: aioredis.Redis, keys: Keys, queue: JobQueue) -> None:
    await queue.submit("run-1", b"one")
    async with (
        asyncio.timeout(10),
        queue.consumer("owner", slots=1, lease_ms=500) as owner,
        queue.consumer("other", slots=1, lease_ms=500) as other,
    ):
        [job] = await owner.take(1)
        for _ in range(10):  # 1 s: twice the lease
            await asyncio.sleep(0.1)
            assert await owner.renew(job)
            assert await other.reclaim() == []
        assert job.entry_id in await _pending(redis, keys, "owner")
        assert await owner.ack(job)
        assert not await owner.ack(job)  # a second ack does nothing
    await _assert_nothing_left(redis, keys)


async def test_reclaim_takes_no_more_than_the_free_slots(
    redis: aioredis.Redis, keys: Keys, queue: JobQueue
) -> None:
    for i in range(5):
        await queue.submit(f"run-{i}", b"x")
    await queue.ensure_group()
    dead = Consumer(queue, "dead", slots=5, lease_ms=100, block_ms=100)
    assert len(await dead.take(5)) == 5
    await asyncio.sleep(0.15)
    async with (
        asyncio.timeout(10),
        queue.consumer("small", slots=2, lease_ms=100, forget_idle_ms=1) as small,
        queue.consumer("big", slots=5, lease_ms=100, forget_idle_ms=1) as big,
    ):
        first = await small.reclaim()
        assert len(first) == 2 and small.free_slots == 0
        assert await small.reclaim() == []  # full: does not even look
        rest = await big.reclaim()
        assert sorted(job.run_id for job in first + rest) == [f"run-{i}" for i in range(5)]
        for consumer, jobs in ((small, first), (big, rest)):
            for job in jobs:
                assert job.deliveries == 2
                assert await consumer.ack(job)
    await _assert_nothing_left(redis, keys)


async def test_closing_hands_back_unfinished_jobs_even_unseen_ones(
    redis: aioredis.Redis, keys: Keys, queue: JobQueue
) -> None:
    for i in range(3):
        await queue.submit(f"run-{i}", b"x")
    async with asyncio.timeout(10):
        async with queue.consumer("leaving", slots=3, lease_ms=60_000, block_ms=100) as leaving:
            assert len(await leaving.take(2)) == 2
            # A read whose reply never reached us (a take cancelled mid-flight): pending, unknown here.
            await redis.xreadgroup(GROUP, "leaving", {keys.jobs: ">"}, count=1)
        assert len(await _pending(redis, keys, "leaving")) == 3  # kept, not dropped with the consumer
        async with queue.consumer("next", slots=5, lease_ms=60_000, forget_idle_ms=1) as after:
            handed_back = await after.reclaim()  # at once, though the lease is a minute
            assert sorted(job.run_id for job in handed_back) == ["run-0", "run-1", "run-2"]
            assert {job.deliveries for job in handed_back} == {2}
            await asyncio.sleep(0.01)
            assert await after.reclaim() == []
            assert await _consumers(redis, keys) == ["next"]
            for job in handed_back:
                assert await after.ack(job)
            with pytest.raises(RuntimeError):
                await leaving.take(1)
    await _assert_nothing_left(redis, keys)


async def test_a_released_job_is_reclaimed_at_once(
    redis: aioredis.Redis, keys: Keys, queue: JobQueue
) -> None:
    await queue.submit("run-1", b"one")
    async with (
        asyncio.timeout(10),
        queue.consumer("a", slots=1, lease_ms=60_000) as a,
        queue.consumer("b", slots=1, lease_ms=60_000) as b,
    ):
        [job] = await a.take(1)
        assert await a.release(job)
        assert a.held == 0
        [again] = await b.reclaim()
        assert again.run_id == "run-1" and again.deliveries == 2
        assert not await a.release(job)
        assert await b.ack(again)
    await _assert_nothing_left(redis, keys)


async def test_a_thousand_runs_leave_nothing_behind(
    redis: aioredis.Redis, keys: Keys, queue: JobQueue
) -> None:
    n = 1_000
    async with asyncio.timeout(60):
        for start in range(0, n, 100):
            await asyncio.gather(*(queue.submit(f"run-{i}", b"%d" % i) for i in range(start, start + 100)))
        assert await queue.length() == n
        done: list[str] = []
        while len(done) < n:
            # Each consumer lives for a few takes; some close holding work, which the next reclaims.
            # forget_idle_ms=1: the next consumer's reclaim deletes those that handed work back.
            options = {"slots": 40, "lease_ms": 60_000, "block_ms": 50, "forget_idle_ms": 1}
            async with queue.consumer(consumer_name(), **options) as consumer:
                jobs = await consumer.reclaim(min_idle_ms=0)
                for _ in range(3):
                    jobs += await consumer.take(consumer.free_slots)
                    finished, jobs = jobs[: len(jobs) * 3 // 4], jobs[len(jobs) * 3 // 4 :]
                    assert all(await asyncio.gather(*(consumer.ack(job) for job in finished)))
                    done += [job.run_id for job in finished]
                if len(done) + len(jobs) >= n:
                    assert all(await asyncio.gather(*(consumer.ack(job) for job in jobs)))
                    done += [job.run_id for job in jobs]
        assert Counter(done) == Counter(f"run-{i}" for i in range(n))
        # A consumer that closed holding work stays listed until a later reclaim finds it idle with
        # nothing pending (the one right after it may have been too soon): a worker's periodic
        # reclaim, as here, deletes it.
        await asyncio.sleep(0.01)
        async with queue.consumer("janitor", slots=1, lease_ms=60_000, forget_idle_ms=1) as janitor:
            assert await janitor.reclaim() == []
    await _assert_nothing_left(redis, keys)


async def test_a_lost_group_is_recreated_over_the_waiting_entries(
    redis: aioredis.Redis, keys: Keys, queue: JobQueue
) -> None:
    async with asyncio.timeout(10), queue.consumer("c", slots=2, lease_ms=60_000, block_ms=100) as consumer:
        await redis.delete(keys.jobs)  # as after a Redis restart without persistence
        await queue.submit("run-1", b"one")  # XADD re-creates the stream, without the group
        assert await consumer.take(1) == []  # NOGROUP: the group is created again at id 0
        [job] = await consumer.take(1)
        assert job.run_id == "run-1"
        assert await consumer.ack(job)
    await _assert_nothing_left(redis, keys)


async def test_a_malformed_entry_is_dropped(redis: aioredis.Redis, keys: Keys, queue: JobQueue) -> None:
    await queue.ensure_group()
    await redis.xadd(keys.jobs, {"something": "else"})
    await queue.submit("run-1", b"one")
    async with asyncio.timeout(10), queue.consumer("c", slots=2, lease_ms=60_000, block_ms=100) as consumer:
        [job] = await consumer.take(2)
        assert job.run_id == "run-1"
        assert await consumer.ack(job)
    await _assert_nothing_left(redis, keys)


async def test_block_stays_within_the_socket_timeout(keys: Keys) -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=1)
    try:
        queue = JobQueue(client, keys)
        async with (
            asyncio.timeout(10),
            queue.consumer("c", slots=1, lease_ms=1_000, block_ms=5_000) as consumer,
        ):
            assert consumer.block_ms == 500
            started = time.monotonic()
            assert await consumer.take(1) == []  # an empty queue: no TimeoutError from a long BLOCK
            assert 0.4 < time.monotonic() - started < 1.5
    finally:
        await client.aclose()


def test_bad_settings_are_refused(redis: aioredis.Redis, keys: Keys) -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        JobQueue(aioredis.Redis.from_url(REDIS_URL, decode_responses=True), keys)
    queue = JobQueue(redis, keys)
    for options in ({"slots": 0}, {"lease_ms": 0}, {"block_ms": 0}, {"block_ms": 5_001}):
        with pytest.raises(ValueError):
            queue.consumer("c", **{"slots": 1, "lease_ms": 1_000, **options})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _fail_fast(
    calls: list[Callable[[], Awaitable[object]]], errors: tuple[type[Exception], ...]
) -> None:
    """Every call raises one of `errors` within a few seconds (they run side by side)."""

    async def one(call: Callable[[], Awaitable[object]]) -> float:
        started = time.monotonic()
        with pytest.raises(errors):
            await call()
        return time.monotonic() - started

    async with asyncio.timeout(15):
        took = await asyncio.gather(*(one(call) for call in calls))
    assert max(took) < 8, took


async def test_unreachable_redis_fails_fast_with_a_connection_error() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=_free_port(), socket_timeout=1, socket_connect_timeout=1)
    try:
        queue = JobQueue(client, Keys(prefix=f"test-{uuid4()}"))
        consumer = Consumer(queue, "c", slots=1, lease_ms=1_000, block_ms=5_000)
        job = Job(entry_id="1-0", run_id="run-1", payload=b"", deliveries=1)
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: queue.submit("run-1", b"x"),
            lambda: consumer.take(1),
            consumer.reclaim,
            lambda: consumer.renew(job),
            lambda: consumer.ack(job),
            queue.ensure_group,
            queue.consumer("c2", slots=1, lease_ms=1_000).__aenter__,
        ]
        await _fail_fast(calls, (RedisConnectionError,))
    finally:
        await client.aclose()


async def test_redis_that_never_answers_does_not_hang_a_take() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()
        finally:
            writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=1, retry=Retry(NoBackoff(), 1))
    try:
        queue = JobQueue(client, Keys(prefix=f"test-{uuid4()}"))
        consumer = Consumer(queue, "c", slots=1, lease_ms=1_000, block_ms=5_000)
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: queue.submit("run-1", b"x"),
            lambda: consumer.take(1),
        ]
        await _fail_fast(calls, (RedisConnectionError, RedisTimeoutError))
    finally:
        await client.aclose()
        server.close()
        async with asyncio.timeout(10):
            await server.wait_closed()
