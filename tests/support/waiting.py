"""Waiting for a condition in async tests: polled, always with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(check: Callable[[], object], within: float = 5.0, every: float = 0.001) -> None:
    """Return once `check()` is true; fail after `within` seconds."""
    for _ in range(int(within / every) + 1):
        if check():
            return
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {within} s")
