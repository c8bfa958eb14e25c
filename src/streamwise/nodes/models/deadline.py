"""Deadlines for model streams: the first byte, then each silence between chunks.

A model server that accepts the connection and then says nothing must not hold a run (or a
non-streaming request) for ever: each wait for the next chunk gets `seconds`, and running out raises
the node's own timeout error. The deadline is per wait, not per answer, so a long answer that keeps
coming is never cut, and time the consumer spends between chunks never counts.

One watchdog timer per stream rather than an `asyncio.timeout` per chunk: a stream can bring a
thousand network reads, and the watchdog costs a clock read per chunk instead of a timer handle.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

T = TypeVar("T")


class _Watchdog:
    """Cancels `task` when it has been waiting for the next chunk for `seconds`."""

    __slots__ = ("fired", "handle", "loop", "seconds", "since", "task", "waiting")

    def __init__(self, seconds: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.seconds = seconds
        self.waiting = False
        self.fired = False
        self.since = self.loop.time()
        self.handle = self.loop.call_at(self.since + seconds, self.check)

    def check(self) -> None:
        now = self.loop.time()
        if self.waiting and now - self.since >= self.seconds and self.task is not None:
            self.fired = True
            self.task.cancel()
            return
        start = self.since if self.waiting else now
        self.handle = self.loop.call_at(start + self.seconds, self.check)


async def each_within(
    chunks: AsyncIterator[T], seconds: float, timed_out: Callable[[], BaseException]
) -> AsyncIterator[T]:
    """Yield from `chunks`, raising `timed_out()` when one takes longer than `seconds` to come."""
    iterator = aiter(chunks)
    dog = _Watchdog(seconds)
    try:
        while True:
            dog.since = dog.loop.time()
            dog.waiting = True
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                # Our own cancellation is a timeout, not a stop; one requested by anybody else as well
                # still stands.
                if dog.fired and dog.task is not None and dog.task.uncancel() == 0:
                    raise timed_out() from None
                raise
            finally:
                dog.waiting = False
            yield chunk
    finally:
        dog.handle.cancel()
