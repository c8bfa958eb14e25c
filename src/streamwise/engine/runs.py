"""Every live run of this process, by run id, with lookup by chat for aborts and a drain for shutdown."""

from __future__ import annotations

import asyncio
import logging

from streamwise.engine.checkpoint import Checkpointer
from streamwise.engine.eventlog import DEFAULT_MAX_UNREAD_BYTES, EventLog
from streamwise.engine.pacing import Pacer
from streamwise.engine.ports import Answerer, MessageStore
from streamwise.engine.run import CancelReason, Run, RunRequest
from streamwise.errors import ShuttingDown

logger = logging.getLogger("streamwise.runs")

__all__ = ["RunManager", "ShuttingDown"]


class RunManager:
    def __init__(
        self,
        store: MessageStore,
        *,
        checkpoint_seconds: float = 1.0,
        max_unread_bytes: int = DEFAULT_MAX_UNREAD_BYTES,
        crash_safe: bool = True,
    ) -> None:
        self.store = store
        self._runs: dict[str, Run] = {}
        self._draining = False
        self.pacer = Pacer()
        self.checkpointer = Checkpointer(store, checkpoint_seconds)
        self.max_unread_bytes = max_unread_bytes
        self.crash_safe = crash_safe  # store questions as runs start, save growing answers

    def __len__(self) -> int:
        return len(self._runs)

    @property
    def draining(self) -> bool:
        return self._draining

    def start(self, request: RunRequest, answerer: Answerer) -> Run:
        if self._draining:
            raise ShuttingDown("server shutting down")
        run = Run(
            request,
            answerer,
            self.store,
            self.pacer,
            log=EventLog(self.max_unread_bytes),
            crash_safe=self.crash_safe,
        )
        self._runs[run.id] = run
        self.pacer.active += 1
        task = run.start()
        if self.crash_safe:
            self.checkpointer.watch(run)
        task.add_done_callback(lambda _task: self._finished(run))
        return run

    def _finished(self, run: Run) -> None:
        self._runs.pop(run.id, None)
        self.checkpointer.forget(run)
        self.pacer.active -= 1

    def get(self, run_id: str) -> Run | None:
        return self._runs.get(run_id)

    def for_chat(self, chatflow_id: str, chat_id: str) -> list[Run]:
        return [
            run
            for run in self._runs.values()
            if run.request.chatflow_id == chatflow_id and run.request.chat_id == chat_id
        ]

    def cancel_chat(self, chatflow_id: str, chat_id: str, reason: CancelReason = "abort") -> int:
        """Stop every run of one chat; the number stopped."""
        return sum(run.cancel(reason) for run in self.for_chat(chatflow_id, chat_id))

    async def drain(self, timeout: float) -> None:
        """Refuse new runs, stop the running ones (`error` then `end`), wait for them to store."""
        self._draining = True
        runs = list(self._runs.values())
        if not runs:
            return
        logger.info("draining %d running stream(s)", len(runs))
        for run in runs:
            run.cancel("shutdown")
        tasks = [run.start() for run in runs]
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            logger.warning("%d run(s) did not finish within %.1fs of shutdown", len(pending), timeout)
            try:
                await self.checkpointer.save_now()  # keep what they have; recovery marks them interrupted
            except Exception as exc:
                logger.warning("saving running answers failed: %r", exc)

    async def close(self) -> None:
        await self.checkpointer.close()
