"""Deadlines for model streams: the first byte, then each silence between chunks.

A model server that accepts the connection and then says nothing must not hold a run (or a
non-streaming request) for ever: each wait for the next chunk gets `seconds`, and running out raises
the node's own timeout error. The deadline is per wait, not per answer, so a long answer that keeps
coming is never cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

T = TypeVar("T")


async def each_within(
    chunks: AsyncIterator[T], seconds: float, timed_out: Callable[[], BaseException]
) -> AsyncIterator[T]:
    """Yield from `chunks`, raising `timed_out()` when one takes longer than `seconds` to come.

    The timeout scope covers only the wait for the next chunk, never the consumer's work between
    them (an `asyncio.timeout` around a `yield` would cancel whichever code runs when it fires).
    """
    iterator = aiter(chunks)
    while True:
        try:
            async with asyncio.timeout(seconds):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise timed_out() from None
        yield chunk
