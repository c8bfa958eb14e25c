"""Cancelling runs across processes, against real Redis: markers, notices, one subscription, reconnects."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from uuid import uuid4

import pytest
import redis.asyncio as aioredis

from streamwise.distributed.cancel import CancelListener, is_cancelled, request_cancel
from streamwise.distributed.keys import Keys
from tests.support.own_redis import OwnRedis
from tests.support.redis import REDIS_URL
from tests.support.server import free_port


def _recorder() -> tuple[list[str], asyncio.Event, Callable[[str], None]]:
    """A callback that records the reasons it gets, and an event set on the first."""
    reasons: list[str] = []
    fired = asyncio.Event()

    def callback(reason: str) -> None:
        reasons.append(reason)
        fired.set()

    return reasons, fired, callback


async def _subscribers(redis: aioredis.Redis, channel: str) -> int:
    [(_, count)] = await redis.pubsub_numsub(channel)
    return int(count)


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


def _unsubscribed(listener: CancelListener) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return not listener.subscribed

    return check


async def test_a_cancel_reaches_the_watched_callback_within_a_second(
    redis: aioredis.Redis, keys: Keys
) -> None:
    other_node = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        async with CancelListener(redis, keys) as listener:
            async with asyncio.timeout(5):
                await listener.wait_subscribed()
            reasons, fired, callback = _recorder()
            untouched, _, bystander = _recorder()
            with listener.watch("run-1", callback) as watch, listener.watch("run-2", bystander):
                await asyncio.sleep(0.1)  # let the watch-time checks find nothing
                assert await request_cancel(other_node, keys, "run-1", "user pressed stop", 60) == 1
                async with asyncio.timeout(1):
                    await fired.wait()
                assert reasons == ["user pressed stop"]
                assert watch.reason == "user pressed stop"
                assert len(listener) == 1  # the fired watch is dropped; run-2's stays
                await asyncio.sleep(0.1)
                assert untouched == []
            assert len(listener) == 0
            assert reasons == ["user pressed stop"]  # once
    finally:
        await other_node.aclose()


async def test_markers_carry_the_reason_and_expire(redis: aioredis.Redis, keys: Keys) -> None:
    assert await is_cancelled(redis, keys, "run-1") is None
    assert await request_cancel(redis, keys, "run-1", "timeout", 1) == 0  # nobody listening
    assert await is_cancelled(redis, keys, "run-1") == "timeout"
    assert 0 < await redis.pttl(keys.cancel("run-1")) <= 1000

    async def expired() -> bool:
        return await is_cancelled(redis, keys, "run-1") is None

    await _until(expired, timeout=3)
    with pytest.raises(ValueError):
        await request_cancel(redis, keys, "run-1", "never", 0)


async def test_a_run_cancelled_before_it_is_watched_fires_on_watch(redis: aioredis.Redis, keys: Keys) -> None:
    await request_cancel(redis, keys, "run-1", "cancelled early", 60)
    async with CancelListener(redis, keys) as listener:
        reasons, fired, callback = _recorder()
        with listener.watch("run-1", callback):
            async with asyncio.timeout(1):
                await fired.wait()
        assert reasons == ["cancelled early"]


async def test_several_watches_of_a_run_each_fire_and_a_failing_callback_is_only_logged(
    redis: aioredis.Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(reason: str) -> None:
        raise RuntimeError("callback bug")

    async with CancelListener(redis, keys) as listener:
        first, first_fired, first_callback = _recorder()
        second, second_fired, second_callback = _recorder()
        with (
            listener.watch("run-1", broken),
            listener.watch("run-1", first_callback),
            listener.watch("run-1", second_callback),
        ):
            await request_cancel(redis, keys, "run-1", "stop", 60)
            async with asyncio.timeout(2):
                await first_fired.wait()
                await second_fired.wait()
        assert first == second == ["stop"]
        assert len(listener) == 0
        assert "cancel callback for run run-1 failed" in caplog.text
        # The listener still works after the failing callback.
        later, later_fired, later_callback = _recorder()
        with listener.watch("run-2", later_callback):
            await request_cancel(redis, keys, "run-2", "again", 60)
            async with asyncio.timeout(2):
                await later_fired.wait()
        assert later == ["again"]


async def test_a_thousand_watches_share_one_subscription_and_leave_nothing(
    redis: aioredis.Redis, keys: Keys
) -> None:
    async with CancelListener(redis, keys) as listener:
        async with asyncio.timeout(5):
            await listener.wait_subscribed()
        _, _, callback = _recorder()
        for i in range(1_000):
            with listener.watch(f"run-{i}", callback):
                assert len(listener) == 1
            assert len(listener) == 0
        handles = [listener.watch(f"run-{i}", callback) for i in range(1_000)]
        assert len(listener) == 1_000
        assert await _subscribers(redis, keys.cancels) == 1
        for handle in handles:
            handle.close()
            handle.close()  # closing twice is harmless
        assert len(listener) == 0
        assert listener._to_check == {}
        await asyncio.sleep(0.1)
        assert await _subscribers(redis, keys.cancels) == 1
    assert not listener.subscribed

    async def nobody_subscribed() -> bool:
        return await _subscribers(redis, keys.cancels) == 0

    await _until(nobody_subscribed, timeout=5)
    with pytest.raises(RuntimeError):
        listener.watch("run-late", callback)


async def test_after_a_reconnect_the_listener_rechecks_every_watched_run(own_redis: OwnRedis) -> None:
    await own_redis.start()
    client = aioredis.Redis(port=own_redis.port, socket_timeout=2, socket_connect_timeout=1)
    keys = Keys(prefix=f"test-{uuid4()}")  # the whole server goes when the test ends
    try:
        listener = CancelListener(client, keys, backoff_initial=0.05, backoff_max=0.5, ping_interval=1)
        async with listener, asyncio.timeout(30):
            await listener.wait_subscribed()
            reasons, fired, callback = _recorder()
            after, after_fired, after_callback = _recorder()
            with listener.watch("run-1", callback), listener.watch("run-2", after_callback):
                await asyncio.sleep(0.1)
                await own_redis.kill()
                await _until(_unsubscribed(listener))
                # Back, but refusing the listener until the marker is in: only the re-check can see
                # it, as no notice is published (like one published while we were disconnected).
                await own_redis.start("--requirepass", "let-me-in")
                admin = aioredis.Redis(port=own_redis.port, password="let-me-in", socket_timeout=2)
                try:
                    await admin.set(keys.cancel("run-1"), "cancelled while you were away", ex=60)
                    await asyncio.sleep(0.5)
                    assert not listener.subscribed and not fired.is_set()
                    await admin.config_set("requirepass", "")
                finally:
                    await admin.aclose()
                await fired.wait()
                assert reasons == ["cancelled while you were away"]
                # And notices arrive again.
                await listener.wait_subscribed()
                await request_cancel(client, keys, "run-2", "after the reconnect", 60)
                async with asyncio.timeout(1):
                    await after_fired.wait()
                assert after == ["after the reconnect"]
    finally:
        await client.aclose()


async def test_a_dropped_connection_redis_py_restores_itself_is_rechecked_too(own_redis: OwnRedis) -> None:
    await own_redis.start()
    client = aioredis.Redis(port=own_redis.port, socket_timeout=2, socket_connect_timeout=1)
    keys = Keys(prefix=f"test-{uuid4()}")
    try:
        async with CancelListener(client, keys) as listener, asyncio.timeout(30):
            await listener.wait_subscribed()
            reasons, fired, callback = _recorder()
            with listener.watch("run-1", callback):
                await asyncio.sleep(0.1)
                # A marker without its notice: nothing to see until the listener looks again.
                await client.set(keys.cancel("run-1"), "no notice", ex=60)
                await asyncio.sleep(0.3)
                assert not fired.is_set()
                # The server drops the subscriber; redis-py reconnects and resubscribes on its own
                # (the server stays up), and that subscribe confirmation triggers the re-check.
                assert await client.client_kill_filter(_type="pubsub") == 1
                await fired.wait()
                assert reasons == ["no notice"]
    finally:
        await client.aclose()


async def test_a_redis_that_goes_quiet_is_left_and_reconnected(own_redis: OwnRedis) -> None:
    await own_redis.start()
    client = aioredis.Redis(port=own_redis.port, socket_timeout=1, socket_connect_timeout=1)
    keys = Keys(prefix=f"test-{uuid4()}")
    try:
        listener = CancelListener(client, keys, backoff_initial=0.05, backoff_max=0.5, ping_interval=0.3)
        async with listener, asyncio.timeout(30):
            await listener.wait_subscribed()
            reasons, fired, callback = _recorder()
            with listener.watch("run-1", callback):
                own_redis.signal(signal.SIGSTOP)  # the connection stays up, nothing answers
                await _until(_unsubscribed(listener))
                own_redis.signal(signal.SIGCONT)
                await listener.wait_subscribed()
                await request_cancel(client, keys, "run-1", "still here", 60)
                async with asyncio.timeout(2):
                    await fired.wait()
                assert reasons == ["still here"]
    finally:
        await client.aclose()


async def test_a_listener_without_redis_still_opens_watches_and_closes() -> None:
    client = aioredis.Redis(port=free_port(), socket_timeout=1, socket_connect_timeout=1)
    try:
        async with asyncio.timeout(5):
            async with CancelListener(client, Keys(prefix=f"test-{uuid4()}")) as listener:
                _, fired, callback = _recorder()
                with listener.watch("run-1", callback):
                    await asyncio.sleep(0.5)
                    assert not listener.subscribed and not fired.is_set()
            assert len(listener) == 0
    finally:
        await client.aclose()
