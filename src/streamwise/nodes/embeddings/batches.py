"""Splitting an embedding job into requests and putting the answers back in order.

Remote embedders take a bounded number of texts per request, and an ingest may hand over thousands:
the texts go out in batches, a few at a time, and the vectors come back in the order of the texts
whatever order the batches finish in. If one batch fails, the others are cancelled and its error is
the job's error (not an ExceptionGroup: callers handle one `ModelError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
Vector = list[float]

# Batches in flight per job: enough to hide a remote server's latency, few enough not to flood it.
DEFAULT_CONCURRENCY = 4


def batched(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """`items` in consecutive slices of at most `size` (Python 3.11 has no itertools.batched)."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    return [items[start : start + size] for start in range(0, len(items), size)]


async def embed_in_batches(
    texts: Sequence[str],
    size: int,
    embed_batch: Callable[[Sequence[str]], Awaitable[list[Vector]]],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[Vector]:
    """Embed `texts` in batches of `size`, at most `concurrency` batches at once, in order.

    `embed_batch` must return exactly one vector per text it is given (it checks the server's answer).
    """
    batches = batched(texts, size)
    if len(batches) <= 1:
        return await embed_batch(batches[0]) if batches else []
    gate = asyncio.Semaphore(max(1, concurrency))
    results: list[list[Vector]] = [[] for _ in batches]

    async def one(position: int, batch: Sequence[str]) -> None:
        async with gate:
            results[position] = await embed_batch(batch)

    try:
        async with asyncio.TaskGroup() as group:
            for position, batch in enumerate(batches):
                group.create_task(one(position, batch))
    except BaseExceptionGroup as failures:
        # The first real failure; the others are the cancellations it caused.
        raise _first(failures) from None
    return [vector for result in results for vector in result]


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
