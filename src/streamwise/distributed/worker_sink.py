"""What a worker's run writes through: its event sink and its message store, both fenced.

A run taken over by another worker must not write anything more: its Redis appends are refused by
the fencing token (the writer fails with `Fenced`), and its last database write first checks, in
Redis, that the run's attempt is still its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from streamwise.distributed.eventlog import Fenced, RedisEventWriter
from streamwise.engine.events import End, Event, Start
from streamwise.engine.ports import ChatTurn, Exchange, MessageStore

logger = logging.getLogger("streamwise.worker")


def failure_kind(failure: BaseException) -> str:
    """The nearest `streamwise.errors` class of a failure, by name: what the API node maps to an
    HTTP status (a node's own subclass is no name it knows)."""
    for cls in type(failure).__mro__:
        if cls.__module__ == "streamwise.errors":
            return cls.__name__
    return "InternalError"


class HandedBack(Exception):
    """The worker stopped and gave the run back to the queue: this attempt writes nothing more."""


class WorkerSink:
    """A worker run's `EventSink`: the Redis writer, without the repeated `start` of a run taken
    over, and with `end` held back until `send_end` (after the run's row is finished). The writer
    failing (fenced, Redis lost) calls `on_fail` once instead of raising into the run, and
    everything after is dropped."""

    def __init__(self, writer: RedisEventWriter, *, started: bool) -> None:
        self.writer = writer
        self._drop_start = started
        self._end: End | None = None  # held back until the worker has finished the run's row
        self.failure: BaseException | None = None
        self.on_fail: Callable[[BaseException], object] | None = None

    @property
    def fenced(self) -> bool:
        return isinstance(self.failure or self.writer.failure, Fenced)

    @property
    def handed_back(self) -> bool:
        return isinstance(self.failure, HandedBack)

    def silence(self) -> None:
        """Drop every event from now on (the worker hands the run back); what was emitted before
        still goes out."""
        if self.failure is None:
            self.failure = HandedBack(f"run {self.writer.run_id}: handed back to the queue")

    def emit(self, event: Event) -> None:
        if self.failure is not None:
            return
        if self._drop_start and type(event) is Start:
            self._drop_start = False
            return
        if type(event) is End:
            self._end = event
            return
        try:
            self.writer.emit(event)
        except Exception as exc:
            self._fail(exc)

    def send_end(self) -> None:
        """Write the run's `end`, held back since the run emitted it (nothing if it was dropped)."""
        end, self._end = self._end, None
        if end is None or self.failure is not None:
            return
        try:
            self.writer.emit(end)
        except Exception as exc:
            self._fail(exc)

    def emit_tokens(self, chunks: Sequence[str]) -> None:
        if self.failure is not None:
            return
        try:
            self.writer.emit_tokens(chunks)
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self.failure = exc
        logger.warning("run %s: its events can no longer be written: %s", self.writer.run_id, exc)
        if self.on_fail is not None:
            self.on_fail(exc)


@dataclass
class FencedStore:
    """The message store as a worker's run sees it: nothing is written once the run is fenced (the
    final write first checks, in Redis, that the run's attempt is still this one), and a run taken
    over begins with an upsert (its rows exist already)."""

    store: MessageStore
    fenced: Callable[[], Awaitable[bool]]
    taken_over: bool

    async def history(self, chatflow_id: str, session_id: str, *, limit: int | None = None) -> list[ChatTurn]:
        return await self.store.history(chatflow_id, session_id, limit=limit)

    async def begin_exchange(self, exchange: Exchange) -> None:
        if self.taken_over:
            await self.store.save_exchange(exchange)
        else:
            await self.store.begin_exchange(exchange)

    async def save_partials(self, answers: Sequence[tuple[str, str]]) -> None:
        await self.store.save_partials(answers)

    async def save_exchange(self, exchange: Exchange) -> None:
        if await self.fenced():
            logger.warning("run %s was taken over: not storing this attempt's answer", exchange.run_id)
            return
        await self.store.save_exchange(exchange)
