"""The per-run event log: ordered batches, heartbeats on silence, any number of readers."""

from __future__ import annotations

import asyncio

import pytest

from streamwise.engine.eventlog import EventLog, SlowReader, as_event
from streamwise.engine.events import End, Event, Start, Token


async def collect(log: EventLog, cursor: int = 0, idle: float | None = None) -> list[list[Event]]:
    batches: list[list[Event]] = []
    async with asyncio.timeout(5):
        async for batch in log.batches(cursor, idle=idle):
            batches.append([as_event(entry) for entry in batch])
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


async def test_events_every_reader_has_read_are_dropped() -> None:
    log = EventLog(retain_bytes=0)
    with log.subscribe() as reader:
        batches = reader.batches()
        for index in range(1000):
            log.emit(Token(f"t{index}"))
        assert len(await anext(batches)) == 1000
        assert log.held == 0 and len(log) == 1000  # absolute cursors go on counting
        log.emit(Token("more"))
        assert [as_event(entry) for entry in await anext(batches)] == [Token("more")]


async def test_until_the_first_reader_comes_nothing_is_dropped() -> None:
    log = EventLog()
    for index in range(300):
        log.emit(Token(f"t{index}"))
    assert log.held == 300
    log.emit(End())
    assert sum(len(batch) for batch in await collect(log)) == 301


async def test_a_log_nobody_will_read_keeps_nothing() -> None:
    log = EventLog()
    log.emit(Start(""))
    log.discard_unread()
    for index in range(5000):
        log.emit(Token(f"t{index}"))
    assert log.held < 300 and len(log) == 5001


async def test_a_reader_that_falls_too_far_behind_is_cut_off_and_the_log_goes_on() -> None:
    log = EventLog(max_unread_bytes=10_000, retain_bytes=0)
    cut: list[bool] = []
    with log.subscribe() as slow, log.subscribe() as fast:
        slow.on_cut = lambda: cut.append(True)
        fast_batches = fast.batches()
        for index in range(1000):
            log.emit(Token(f"token {index} " * 3))
            if index % 50 == 0:
                await anext(fast_batches)  # this one keeps reading
        assert cut == [True] and slow.cut and not fast.cut
        assert log.held < 200  # nothing is kept for the reader that left
        with pytest.raises(SlowReader):
            await anext(slow.batches())
        log.emit(End())
        rest = [event async for batch in fast_batches for event in batch]
        assert rest[-1] == End()


async def test_a_reader_may_not_start_before_what_is_still_held() -> None:
    log = EventLog(retain_bytes=0)
    with log.subscribe() as reader:
        batches = reader.batches()
        for index in range(500):
            log.emit(Token(str(index)))
        await anext(batches)
    with pytest.raises(LookupError):
        log.since(0)
    with pytest.raises(LookupError), log.subscribe(0):
        pass


async def test_what_was_read_is_kept_up_to_retain_bytes_for_a_reader_that_resumes() -> None:
    log = EventLog(retain_bytes=20_000)
    with log.subscribe() as reader:
        batches = reader.batches()
        for index in range(100):
            log.emit(Token(f"t{index}"))
        await anext(batches)
    # All 100 read, all still there: a client that lost its connection picks up from event 40.
    assert log.held == 100
    with log.subscribe(40) as resumed:
        log.emit(End())
        rest = [event async for batch in resumed.batches() for event in batch]
    assert as_event(rest[0]) == Token("t40") and rest[-1] == End() and len(rest) == 61


async def test_the_kept_history_is_bounded() -> None:
    log = EventLog(retain_bytes=10_000)
    with log.subscribe() as reader:
        batches = reader.batches()
        for index in range(20_000):
            log.emit(Token(f"token {index}"))
            if index % 100 == 0:
                await anext(batches)
        await anext(batches)
        assert 0 < log.held * 70 <= 10_000 * 1.2  # about retain_bytes of the newest events
        with pytest.raises(LookupError), log.subscribe(0):
            pass
        with log.subscribe(len(log) - 10) as late:
            log.emit(End())
            assert len([event async for batch in late.batches() for event in batch]) == 11
