"""Every live run of this process, by run id, with lookup by chat for aborts and a drain for shutdown.

A finished run stays findable by id for `resume_seconds`, so that a client whose connection dropped
near the end can still read the rest of its events (its log keeps the newest `resume_bytes`).
"""

from __future__ import annotations

import asyncio
import logging

from streamwise.engine.checkpoint import Checkpointer
from streamwise.engine.eventlog import DEFAULT_MAX_UNREAD_BYTES, DEFAULT_RETAIN_BYTES, EventLog
from streamwise.engine.pacing import Pacer
from streamwise.engine.ports import Answerer, MessageStore
from streamwise.engine.run import CancelReason, Run, RunRequest
from streamwise.engine.sink import EventSink
from streamwise.errors import ShuttingDown

logger = logging.getLogger("streamwise.runs")

MAX_ENDED_RUNS = 1000
MAX_ENDED_BYTES = 64 * 1024 * 1024

__all__ = ["RunManager", "ShuttingDown"]


class RunManager:
    def __init__(
        self,
        store: MessageStore,
        *,
        checkpoint_seconds: float = 1.0,
        max_unread_bytes: int = DEFAULT_MAX_UNREAD_BYTES,
        crash_safe: bool = True,
        resume_seconds: float = 60.0,
        resume_bytes: int = DEFAULT_RETAIN_BYTES,
    ) -> None:
        self.store = store
        self._runs: dict[str, Run] = {}
        self._ended: dict[str, tuple[Run, int]] = {}  # finished (with their size), oldest first
        self._ended_bytes = 0
        self.resume_seconds = resume_seconds
        self.resume_bytes = resume_bytes
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

    def start(
        self,
        request: RunRequest,
        answerer: Answerer,
        *,
        sink: EventSink | None = None,
        run_id: str | None = None,
        message_ids: tuple[str, str] | None = None,
        store: MessageStore | None = None,
    ) -> Run:
        """Start a run. By default its events go to a log of its own here; a worker passes the `sink`
        (its Redis stream), the run's id and message ids from the job, and a store of its own."""
        if self._draining:
            raise ShuttingDown("server shutting down")
        run = Run(
            request,
            answerer,
            store or self.store,
            self.pacer,
            log=None if sink is not None else EventLog(self.max_unread_bytes, self.resume_bytes),
            crash_safe=self.crash_safe,
            sink=sink,
            run_id=run_id,
            message_ids=message_ids,
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
        if run.log is not None and self.resume_seconds > 0 and run.log.retain_bytes > 0:
            size = run.log.held_bytes
            self._ended[run.id] = (run, size)
            self._ended_bytes += size
            asyncio.get_running_loop().call_later(self.resume_seconds, self._expire, run.id)
            # Bounded however fast runs end: the oldest go first.
            while self._ended and (len(self._ended) > MAX_ENDED_RUNS or self._ended_bytes > MAX_ENDED_BYTES):
                self._expire(next(iter(self._ended)))

    def _expire(self, run_id: str) -> None:
        ended = self._ended.pop(run_id, None)
        if ended is not None:
            self._ended_bytes -= ended[1]

    def get(self, run_id: str) -> Run | None:
        """A running run, or one that ended less than `resume_seconds` ago."""
        running = self._runs.get(run_id)
        if running is not None:
            return running
        ended = self._ended.get(run_id)
        return None if ended is None else ended[0]

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
