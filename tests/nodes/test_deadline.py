"""The per-wait deadline of model streams: silence raises the node's error; slow consumers and other
cancellations are left alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from streamwise.nodes.models.deadline import each_within


class Silent(Exception):
    pass


async def chunks(delays: list[float]) -> AsyncIterator[int]:
    for index, delay in enumerate(delays):
        await asyncio.sleep(delay)
        yield index


async def test_chunks_within_the_deadline_all_arrive() -> None:
    got = [chunk async for chunk in each_within(chunks([0.01] * 20), 0.2, Silent)]
    assert got == list(range(20))


async def test_a_silence_longer_than_the_deadline_raises_the_given_error() -> None:
    got: list[int] = []
    with pytest.raises(Silent):
        async for chunk in each_within(chunks([0.0, 0.0, 1.0]), 0.1, Silent):
            got.append(chunk)
    assert got == [0, 1]
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_time_the_consumer_spends_between_chunks_does_not_count() -> None:
    got = []
    async for chunk in each_within(chunks([0.0] * 3), 0.05, Silent):
        await asyncio.sleep(0.15)  # slow consumer, prompt producer
        got.append(chunk)
    assert got == [0, 1, 2]


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def consume() -> None:
        async for _ in each_within(chunks([10.0]), 5.0, Silent):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
