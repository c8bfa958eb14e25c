"""The stream hub against real Redis: one reading connection for many subscribers, cursors, latency,
heartbeats, gone and trimmed runs, slow readers, Redis dying and coming back, and no leaks."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from typing import Any
from uuid import uuid4

import pytest
import redis.asyncio as aioredis

from streamwise.distributed.codec import Entry
from streamwise.distributed.eventlog import EventsLost, RedisEventWriter, RunGone, take_over
from streamwise.distributed.hub import HubSubscription, RedisUnavailable, StreamHub
from streamwise.distributed.keys import Keys
from streamwise.engine.eventlog import SlowReader
from streamwise.engine.events import End, Metadata, Start
from tests.support.own_redis import OwnRedis
from tests.support.redis import REDIS_URL
from tests.support.waiting import until

RUN = "run-1"


async def _writer(redis: aioredis.Redis, keys: Keys, run_id: str = RUN, **options: Any) -> RedisEventWriter:
    return RedisEventWriter(redis, keys, run_id, await take_over(redis, keys, run_id), **options)


async def _collect(sub: HubSubscription, within: float = 10) -> list[Entry]:
    got: list[Entry] = []
    async with asyncio.timeout(within):
        async for batch in sub.batches():
            got.extend(batch)
    return got


async def _first_batch(sub: HubSubscription, within: float = 10) -> list[Entry]:
    async with asyncio.timeout(within):
        async for batch in sub.batches():
            return batch
    raise AssertionError("no batch")


async def _next(batches: AsyncIterator[list[Entry]]) -> list[Entry]:
    return await anext(batches)


def _named(name: str, **options: Any) -> aioredis.Redis:
    """A client whose connections carry `name`, so that CLIENT LIST tells them apart."""
    return aioredis.Redis.from_url(REDIS_URL, client_name=name, **options)


async def _connections(redis: aioredis.Redis, name: str) -> list[dict[str, str]]:
    return [client for client in await redis.client_list() if client.get("name") == name]


@pytest.fixture
async def hub(redis: aioredis.Redis, keys: Keys) -> AsyncIterator[StreamHub]:
    async with StreamHub(redis, keys, block_ms=1000) as hub:
        yield hub
    assert hub.subscriptions == 0


async def test_two_hundred_runs_are_read_through_one_connection(redis: aioredis.Redis, keys: Keys) -> None:
    name = f"hub-{uuid4().hex[:12]}"
    client = _named(name, socket_timeout=5)
    writers_client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5, max_connections=256)
    runs = [f"run-{i}" for i in range(200)]
    expected: dict[str, list[Entry]] = {
        run: [Start(), *(f"{run}:{n} " for n in range(40)), End()] for run in runs
    }

    async def write(run_id: str) -> None:
        async with await _writer(writers_client, keys, run_id) as writer:
            writer.emit(Start())
            for n in range(40):
                writer.emit_tokens([f"{run_id}:{n} "])
                await asyncio.sleep(random.random() * 0.004)
            writer.emit(End())

    try:
        async with StreamHub(client, keys) as hub, asyncio.timeout(60):

            async def read(run_id: str) -> list[Entry]:
                with hub.subscribe(run_id) as sub:
                    return await _collect(sub, within=50)

            started = time.monotonic()
            readers = [asyncio.create_task(read(run)) for run in runs]
            await until(lambda: hub.subscriptions == 200)
            writers = [asyncio.create_task(write(run)) for run in runs]
            samples: list[list[dict[str, str]]] = []
            while not all(task.done() for task in readers):
                samples.append(await _connections(redis, name))
                await asyncio.sleep(0.05)
            results = await asyncio.gather(*readers)
            await asyncio.gather(*writers)
            took = time.monotonic() - started
            assert hub.subscriptions == 0
    finally:
        await client.aclose()
        await writers_client.aclose()
    assert dict(zip(runs, results, strict=True)) == expected
    reading = max(sum(1 for c in sample if c["cmd"] == "xread") for sample in samples)
    total = max(len(sample) for sample in samples)
    print(f"\n200 runs x 42 events through one hub: {took:.2f} s; {total} connections, {reading} reading")
    assert reading == 1  # the hub's own connection; the pool's is only for CLIENT UNBLOCK
    assert total <= 2


async def test_a_subscription_after_k_gets_exactly_the_events_after_k(
    redis: aioredis.Redis, keys: Keys, hub: StreamHub
) -> None:
    writer = await _writer(redis, keys)
    expected: list[Entry] = []
    for size in [1, 3, 5, 2, 4]:  # entries end at events 1, 4, 9, 11, 15
        chunk = [f"{len(expected) + i + 1}" for i in range(size)]
        writer.emit_tokens(chunk)
        expected.extend(chunk)
        await writer.flush()

    async def read(after: int) -> list[Entry]:
        with hub.subscribe(RUN, after) as sub:
            got = await _collect(sub)
            assert sub.cursor == 17
            return got

    # Mid-stream: every cursor at once (one stream read for all of them), before the end is written.
    readers = [asyncio.create_task(read(k)) for k in range(16)]
    await asyncio.sleep(0.2)
    writer.emit(Metadata({"done": True}))
    writer.emit(End())
    await writer.aclose()
    expected += [Metadata({"done": True}), End()]
    assert await asyncio.gather(*readers) == [expected[k:] for k in range(16)]
    # After the end: one at a time, including after End itself (nothing, and it returns at once).
    for k in range(len(expected) + 1):
        started = time.monotonic()
        with hub.subscribe(RUN, k) as sub:
            assert await _collect(sub) == expected[k:], k
            assert sub.cursor == len(expected)
        assert time.monotonic() - started < 0.5


async def test_a_new_subscription_does_not_wait_for_the_hub_blocked_on_others(
    redis: aioredis.Redis, keys: Keys
) -> None:
    name = f"hub-{uuid4().hex[:12]}"
    client = _named(name, socket_timeout=20)
    try:
        async with StreamHub(client, keys, block_ms=5000, missing_seconds=60) as hub:
            assert hub.block_ms == 5000
            with hub.subscribe("quiet"):  # never written: the hub blocks on it
                await asyncio.sleep(0.3)
                blocked = [c for c in await _connections(redis, name) if "b" in c["flags"]]
                assert [c["cmd"] for c in blocked] == ["xread"]
                writer = await _writer(redis, keys)
                latencies: list[float] = []
                for i in range(20):
                    writer.emit_tokens([f"t{i}"])
                    await writer.flush()
                    await asyncio.sleep(random.random() * 0.01)
                    started = time.monotonic()
                    with hub.subscribe(RUN, i) as sub:
                        assert await _first_batch(sub, within=6) == [f"t{i}"]
                    latencies.append(time.monotonic() - started)
                # A token appended while the hub is blocked reaches its subscriber at once too.
                with hub.subscribe(RUN, 20) as sub:
                    await asyncio.sleep(0.3)
                    started = time.monotonic()
                    writer.emit_tokens(["late"])
                    assert await _first_batch(sub, within=6) == ["late"]
                    appended = time.monotonic() - started
                await writer.aclose()
    finally:
        await client.aclose()
    print(f"\nfirst batch of a new subscription: max {max(latencies) * 1000:.1f} ms (block 5 s)")
    print(f"a token appended under a blocked XREAD: {appended * 1000:.1f} ms")
    assert max(latencies) < 1 and appended < 1


async def test_batches_yields_heartbeats_while_idle(
    redis: aioredis.Redis, keys: Keys, hub: StreamHub
) -> None:
    writer = await _writer(redis, keys)
    writer.emit_tokens(["a"])
    await writer.flush()
    got: list[list[Entry]] = []
    started = time.monotonic()
    with hub.subscribe(RUN, 1) as sub:
        async with asyncio.timeout(10):
            async for batch in sub.batches(idle=0.1):
                got.append(batch)
                if len(got) == 3:
                    writer.emit_tokens(["x"])
                    writer.emit(End())
        assert sub.cursor == 3
    assert got[:3] == [[], [], []] and [e for batch in got for e in batch] == ["x", End()]
    assert 0.25 < time.monotonic() - started < 3
    await writer.aclose()


async def test_runs_that_are_gone_raise_run_gone(redis: aioredis.Redis, keys: Keys) -> None:
    async with StreamHub(redis, keys, block_ms=300, missing_seconds=0.5) as hub:
        started = time.monotonic()
        with hub.subscribe("no-such-run", 3) as sub, pytest.raises(RunGone, match="expired"):
            await _collect(sub)
        assert time.monotonic() - started < 0.5
        started = time.monotonic()
        with hub.subscribe("no-such-run") as sub, pytest.raises(RunGone, match="no events were written"):
            await _collect(sub)
        assert 0.4 < time.monotonic() - started < 2
        # Deleted (as EXPIRE would) under an open subscription.
        writer = await _writer(redis, keys)
        writer.emit_tokens(["a", "b"])
        await writer.flush()
        with hub.subscribe(RUN) as sub:
            batches = sub.batches()
            async with asyncio.timeout(5):
                assert await anext(batches) == ["a", "b"]
                await redis.delete(keys.events(RUN))
                started = time.monotonic()
                with pytest.raises(RunGone, match="expired"):
                    await anext(batches)
            assert time.monotonic() - started < 2
        assert hub.subscriptions == 0


async def test_a_run_that_starts_late_is_not_gone(redis: aioredis.Redis, keys: Keys) -> None:
    async with StreamHub(redis, keys, block_ms=200, missing_seconds=5) as hub:
        with hub.subscribe(RUN) as sub:
            reader = asyncio.create_task(_collect(sub))
            await asyncio.sleep(0.6)  # a few looks at a missing key
            async with await _writer(redis, keys) as writer:
                writer.emit_tokens(["late"])
                writer.emit(End())
            assert await reader == ["late", End()]


async def test_events_trimmed_before_the_subscriber_got_them_are_lost(
    redis: aioredis.Redis, keys: Keys, hub: StreamHub
) -> None:
    writer = await _writer(redis, keys, maxlen=10)
    for i in range(500):
        writer.emit_tokens([str(i)])
        await writer.flush()
    with hub.subscribe(RUN) as sub, pytest.raises(EventsLost, match="trimmed"):
        await _collect(sub)
    with hub.subscribe(RUN, 499) as sub:
        assert await _first_batch(sub) == ["499"]
        writer.emit(End())
        assert await _collect(sub) == [End()]
    await writer.aclose()


async def test_a_subscriber_that_does_not_read_is_cut_off(redis: aioredis.Redis, keys: Keys) -> None:
    async with StreamHub(redis, keys, max_unread_bytes=10_000) as hub:
        writer = await _writer(redis, keys)
        tokens = [f"{i:04d}" + "x" * 996 for i in range(30)]  # ~1 kB each, 30 kB in all
        with hub.subscribe(RUN) as slow, hub.subscribe(RUN) as fast:
            reader = asyncio.create_task(_collect(fast))
            for token in tokens:
                writer.emit_tokens([token])
                await writer.flush()
                await asyncio.sleep(0.002)
            writer.emit(End())
            await writer.aclose()
            assert await reader == [*tokens, End()]  # the run and its other readers go on
            got: list[list[Entry]] = []
            with pytest.raises(SlowReader, match="10000 bytes"):
                async with asyncio.timeout(5):
                    async for batch in slow.batches():
                        got.append(batch)
            assert got == []


async def test_a_resp3_client_works_too(keys: Keys, redis: aioredis.Redis) -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5, protocol=3)
    try:
        async with StreamHub(client, keys) as hub:
            async with await _writer(redis, keys) as writer:
                writer.emit_tokens(["a", "b"])
                await writer.flush()
                writer.emit(End())
            with hub.subscribe(RUN, 1) as sub:
                assert await _collect(sub) == ["b", End()]
    finally:
        await client.aclose()


async def test_redis_dying_ends_every_subscription_and_the_hub_recovers(own_redis: OwnRedis) -> None:
    await own_redis.start()
    client = aioredis.Redis(port=own_redis.port, socket_timeout=2, socket_connect_timeout=1)
    keys = Keys(prefix=f"test-{uuid4()}")  # the whole server goes when the test ends
    runs = [f"run-{i}" for i in range(5)]
    try:
        async with StreamHub(client, keys) as hub, asyncio.timeout(60):
            writers = [await _writer(client, keys, run) for run in runs]
            for writer in writers:
                writer.emit_tokens(["first"])
                await writer.flush()
            with ExitStack() as stack:
                subs = [stack.enter_context(hub.subscribe(run)) for run in runs]
                batches = [sub.batches() for sub in subs]
                for sub_batches in batches:
                    assert await anext(sub_batches) == ["first"]
                pending = [asyncio.create_task(_next(sub_batches)) for sub_batches in batches]
                await asyncio.sleep(0.2)
                await own_redis.kill()
                started = time.monotonic()
                for task in pending:
                    with pytest.raises(RedisUnavailable):
                        async with asyncio.timeout(5):
                            await task
                died = time.monotonic() - started
            assert hub.subscriptions == 0
            await asyncio.sleep(1)  # the hub is retrying with backoff now
            started = time.monotonic()
            with hub.subscribe(RUN) as sub, pytest.raises(RedisUnavailable):
                await _collect(sub)
            refused = time.monotonic() - started
            await own_redis.start()
            async with await _writer(client, keys) as writer:
                writer.emit_tokens(["back"])
                writer.emit(End())
            started = time.monotonic()
            with hub.subscribe(RUN) as sub:
                assert await _collect(sub) == ["back", End()]
            back = time.monotonic() - started
    finally:
        await client.aclose()
    print(f"\nRedis killed: subscriptions failed in {died:.2f} s; one opened while down in {refused:.2f} s;")
    print(f"after the restart a new subscription read its run in {back:.2f} s")
    assert died < 3 and refused < 3  # socket timeout 2 s, + 1 s


async def test_a_redis_that_goes_silent_ends_subscriptions_within_the_socket_timeout(
    own_redis: OwnRedis,
) -> None:
    await own_redis.start()
    client = aioredis.Redis(port=own_redis.port, socket_timeout=1, socket_connect_timeout=1)
    keys = Keys(prefix=f"test-{uuid4()}")
    try:
        async with StreamHub(client, keys) as hub, asyncio.timeout(30):
            assert hub.block_ms == 500  # half the socket timeout
            writer = await _writer(client, keys)
            writer.emit_tokens(["first"])
            await writer.flush()
            with hub.subscribe(RUN) as sub:
                batches = sub.batches()
                assert await _next(batches) == ["first"]
                pending = asyncio.create_task(_next(batches))
                await asyncio.sleep(0.1)
                own_redis.signal(signal.SIGSTOP)  # connections stay up, nothing answers
                started = time.monotonic()
                with pytest.raises(RedisUnavailable):
                    await pending
                silent = time.monotonic() - started
            started = time.monotonic()
            with hub.subscribe(RUN, 1) as sub, pytest.raises(RedisUnavailable):
                await _collect(sub)
            refused = time.monotonic() - started
            own_redis.signal(signal.SIGCONT)
            writer.emit(End())
            await writer.aclose()
            with hub.subscribe(RUN, 1) as sub:
                assert await _collect(sub) == [End()]
    finally:
        await client.aclose()
    print(f"\nRedis silent: a subscription failed in {silent:.2f} s, one opened then in {refused:.2f} s")
    assert silent < 2 and refused < 2  # socket timeout 1 s, + 1 s


async def test_a_key_that_is_not_a_stream_fails_only_its_subscription(
    redis: aioredis.Redis, keys: Keys, hub: StreamHub
) -> None:
    await redis.set(keys.events("not-a-stream"), "x")
    async with await _writer(redis, keys) as writer:
        writer.emit_tokens(["fine"])
        writer.emit(End())
    with hub.subscribe("not-a-stream") as bad, hub.subscribe(RUN) as good:
        with pytest.raises(RedisUnavailable, match="WRONGTYPE"):
            await _collect(bad)
        assert await _collect(good) == ["fine", End()]


async def test_aclose_ends_open_subscriptions(redis: aioredis.Redis, keys: Keys) -> None:
    hub = StreamHub(redis, keys)
    async with hub:
        with hub.subscribe(RUN) as sub:
            reader = asyncio.create_task(_collect(sub))
            await asyncio.sleep(0.1)
            await hub.aclose()
            with pytest.raises(RedisUnavailable, match="hub closed"):
                await reader
    with pytest.raises(RuntimeError, match="closed"), hub.subscribe(RUN):
        pass


async def test_a_thousand_subscriptions_leave_nothing_behind(redis: aioredis.Redis, keys: Keys) -> None:
    name = f"hub-{uuid4().hex[:12]}"
    client = _named(name, socket_timeout=5)
    try:
        async with StreamHub(client, keys) as hub, asyncio.timeout(30):
            started = time.monotonic()
            for i in range(1000):
                with hub.subscribe(f"run-{i % 50}", i % 3):
                    if i % 5 == 0:
                        await asyncio.sleep(0)
            cycles = time.monotonic() - started
            assert hub.subscriptions == 0
            async with await _writer(redis, keys) as writer:
                writer.emit_tokens(["still", "working"])
                writer.emit(End())
            with hub.subscribe(RUN) as sub:
                assert await _collect(sub) == ["still", "working", End()]
            assert hub.subscriptions == 0
            assert [c["cmd"] for c in await _connections(redis, name)].count("xread") == 1
        print(f"\n1000 subscribe/unsubscribe cycles: {cycles * 1000:.0f} ms")
        assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("streamwise-hub")]

        async def closed() -> bool:
            return not [c for c in await _connections(redis, name) if c["cmd"] == "xread"]

        for _ in range(500):  # the server notices the close at once, or nearly
            if await closed():
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the hub's reading connection is still open")
    finally:
        await client.aclose()
