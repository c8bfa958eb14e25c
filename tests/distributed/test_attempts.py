"""A worker beginning an attempt (`begin_attempt`) against real Redis: the fencing token, where the
attempt starts, a job submitted twice, a log that already ended, a cancel marker."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from streamwise.distributed.attempts import Attempt, begin_attempt
from streamwise.distributed.cancel import request_cancel
from streamwise.distributed.eventlog import Fenced, RedisEventWriter
from streamwise.distributed.keys import Keys
from streamwise.engine.events import End, Start

RUN = "run-1"


async def _begin(redis: aioredis.Redis, keys: Keys, *, first: bool, ttl: int = 3600) -> Attempt | None:
    return await begin_attempt(redis, keys, RUN, first_delivery=first, ttl_seconds=ttl)


async def test_a_new_run_begins_at_attempt_1_from_event_0(redis: aioredis.Redis, keys: Keys) -> None:
    assert await _begin(redis, keys, first=True, ttl=50) == Attempt(1, 0, False, None)
    assert 0 < await redis.ttl(keys.attempt(RUN)) <= 50


async def test_a_take_over_gets_the_next_token_and_starts_after_the_last_event(
    redis: aioredis.Redis, keys: Keys
) -> None:
    first = await _begin(redis, keys, first=True)
    assert first is not None
    writer = RedisEventWriter(redis, keys, RUN, first.number)
    writer.emit(Start(""))
    writer.emit_tokens(["a", "b"])
    await writer.flush()
    assert await _begin(redis, keys, first=False) == Attempt(2, 3, False, None)
    writer.emit_tokens(["c"])  # the older attempt is fenced from now on
    with pytest.raises(Fenced):
        await writer.flush()


async def test_a_first_delivery_of_a_run_with_events_is_a_duplicate_and_changes_nothing(
    redis: aioredis.Redis, keys: Keys
) -> None:
    begun = await _begin(redis, keys, first=True)
    assert begun is not None
    writer = RedisEventWriter(redis, keys, RUN, begun.number)
    writer.emit(Start(""))
    await writer.flush()
    assert await _begin(redis, keys, first=True) is None
    assert await redis.get(keys.attempt(RUN)) == b"1"  # the running attempt is not fenced
    writer.emit_tokens(["still mine"])
    await writer.flush()


async def test_a_log_that_ended_is_reported_ended(redis: aioredis.Redis, keys: Keys) -> None:
    begun = await _begin(redis, keys, first=True)
    assert begun is not None
    async with RedisEventWriter(redis, keys, RUN, begun.number) as writer:
        writer.emit(Start(""))
        writer.emit_tokens(["x"])
        writer.emit(End())
    again = await _begin(redis, keys, first=False)
    assert again is not None and again.ended and again.start == 3


async def test_the_cancel_marker_comes_with_the_attempt(redis: aioredis.Redis, keys: Keys) -> None:
    await request_cancel(redis, keys, RUN, "disconnect", 60)
    assert await _begin(redis, keys, first=True) == Attempt(1, 0, False, "disconnect")
