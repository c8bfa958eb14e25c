"""The per-run event log: ordered batches, heartbeats on silence, any number of readers."""

from __future__ import annotations

import asyncio

import pytest

from streamwise.engine.eventlog import EventLog
from streamwise.engine.events import End, Event, Start, Token


async def collect(log: EventLog, cursor: int = 0, idle: float | None = None) -> list[list[Event]]:
    batches: list[list[Event]] = []
    async with asyncio.timeout(5):
        async for batch in log.batches(cursor, idle=idle):
            batches.append(batch)
    return batches


async def test_events_that_arrive_together_come_out_as_one_batch() -> None:
    log = EventLog()
    reader = asyncio.ensure_future(collect(log))
    await asyncio.sleep(0)
    for event in (Start(""), Token("a"), Token("b")):
        log.emit(event)
    await asyncio.sleep(0)
    log.emit(End())
    assert await reader == [[Start(""), Token("a"), Token("b")], [End()]]


async def test_silence_yields_empty_batches_for_heartbeats() -> None:
    log = EventLog()
    reader = asyncio.ensure_future(collect(log, idle=0.01))
    await asyncio.sleep(0.05)
    log.emit(End())
    batches = await reader
    assert batches[-1] == [End()] and len(batches) >= 3 and all(batch == [] for batch in batches[:-1])


async def test_a_late_reader_starts_from_its_cursor() -> None:
    log = EventLog()
    for event in (Start(""), Token("a"), Token("b"), End()):
        log.emit(event)
    assert await collect(log, cursor=2) == [[Token("b"), End()]]


async def test_nothing_may_follow_end() -> None:
    log = EventLog()
    log.emit(End())
    with pytest.raises(RuntimeError, match="after end"):
        log.emit(Token("late"))


async def test_a_cancelled_reader_leaves_no_waiter_behind() -> None:
    log = EventLog()
    reader = asyncio.ensure_future(log.wait_beyond(0, None))
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert log._waiters == []
    assert await log.wait_beyond(0, 0.001) is False
