"""Saving running answers as they grow, so a crash loses at most one interval of any of them.

One task for all runs of the process: every `interval` seconds it takes each run's answer if it grew
(`Run.partial`) and saves them all in one batch. Nothing here is on the token path: a run only
appends to its list of parts. The task exists while runs do and ends when the last one has.
"""

from __future__ import annotations

import asyncio
import logging

from streamwise.engine.ports import MessageStore
from streamwise.engine.run import Run

logger = logging.getLogger("streamwise.runs")


class Checkpointer:
    def __init__(self, store: MessageStore, interval: float = 1.0) -> None:
        self.store = store
        self.interval = interval
        self.runs: set[Run] = set()
        self.saves = 0  # batches written, for tests and diagnostics
        self._task: asyncio.Task[None] | None = None

    def watch(self, run: Run) -> None:
        self.runs.add(run)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="streamwise-checkpointer")

    def forget(self, run: Run) -> None:
        self.runs.discard(run)

    async def save_now(self) -> None:
        batch = [partial for run in list(self.runs) if (partial := run.partial()) is not None]
        if batch:
            await self.store.save_partials(batch)
            self.saves += 1

    async def _loop(self) -> None:
        while self.runs:
            await asyncio.sleep(self.interval)
            try:
                await self.save_now()
            except Exception as exc:  # the final write of each run still comes; keep trying
                logger.warning("saving running answers failed: %r", exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
