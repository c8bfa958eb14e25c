"""An API node's side of scale-out: hand runs to workers, read their events, cancel them.

`submit` stores the run's row (`queued`) and then adds the job to the stream, in that order, so a
worker never takes a run the database does not know. The events are read through the node's one
`StreamHub` (one Redis reader task for every stream this node serves), from event 0, so nothing a
worker wrote before the client subscribed is lost.

`RemoteReader` is the `EventReader` the SSE response reads: the hub's subscription, with the waits
an API node must bound itself. A run that no worker started by its start-by time (the queue wait)
is failed here: its row is finished, a cancel marker stops any worker that takes it later, and the
stream ends with `error` then `end`. Redis failing, or the run's events expiring, end the stream
the same way (`ReaderFailed`).

Cancelling is a marker with a TTL and a publish (`streamwise.distributed.cancel`), from any node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streamwise.distributed.cancel import request_cancel
from streamwise.distributed.dispatch import JobQueue
from streamwise.distributed.eventlog import EventsLost, RunGone
from streamwise.distributed.hub import HubSubscription, RedisUnavailable, StreamHub
from streamwise.distributed.jobs import RunJob
from streamwise.distributed.keys import Keys
from streamwise.engine.run import RunRequest
from streamwise.engine.sink import Entry, ReaderFailed
from streamwise.errors import Unavailable
from streamwise.store.runs import RunRepository

logger = logging.getLogger("streamwise.dispatch")

QUEUE_GRACE_SECONDS = 2.0  # beyond the start-by time, before this node gives up on a queued run
_TICK = 0.5  # how often a silent reader looks at its deadlines
REDIS_LOST = "Lost the connection to Redis, which relays this answer; it may still finish and be stored"


@dataclass
class RemoteRuns:
    redis: aioredis.Redis
    keys: Keys
    queue: JobQueue
    hub: StreamHub
    rows: RunRepository
    name: str
    queue_wait_seconds: float
    run_deadline_seconds: float
    cancel_ttl_seconds: float

    async def submit(self, request: RunRequest, override: Mapping[str, Any]) -> RunJob:
        """Store the run as queued, then hand it to the workers; `Unavailable` if Redis is down."""
        now = time.time()
        job = RunJob(
            run_id=str(uuid.uuid4()),
            request=request,
            user_message_id=str(uuid.uuid4()),
            chat_message_id=str(uuid.uuid4()),
            override_config=dict(override),
            start_by=now + self.queue_wait_seconds,
            deadline=now + self.run_deadline_seconds,
            queued_by=self.name,
        )
        await self.rows.create(job.run_id, request.chatflow_id, request.chat_id, request.session_id)
        try:
            await self.queue.submit(job.run_id, job.dumps())
        except RedisError as exc:
            logger.warning("run %s: could not be handed to the workers: %s", job.run_id, exc)
            await self.rows.finish(job.run_id, "error", attempt=0, error="Redis unavailable")
            raise Unavailable("The server cannot reach Redis, which hands answers to its workers") from None
        return job

    async def cancel(self, run_id: str, reason: str = "abort") -> None:
        """Stop a run wherever it runs (or will run); `Unavailable` if Redis is down."""
        try:
            await request_cancel(self.redis, self.keys, run_id, reason, self.cancel_ttl_seconds)
        except RedisError as exc:
            raise Unavailable(f"The server cannot reach Redis to stop the answer: {exc}") from None

    def cancel_soon(self, run_id: str, reason: str = "disconnect") -> None:
        """`cancel`, from code that cannot wait (a client that hung up)."""
        task = asyncio.get_running_loop().create_task(self._cancel_quietly(run_id, reason))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _cancel_quietly(self, run_id: str, reason: str) -> None:
        try:
            await self.cancel(run_id, reason)
        except Unavailable as exc:
            logger.warning("run %s: %s", run_id, exc.message)

    async def cancel_chat(self, chatflow_id: str, chat_id: str) -> int:
        """Stop every active run of one chat, on whichever worker; the number asked to stop."""
        run_ids = await self.rows.active_for_chat(chatflow_id, chat_id)
        for run_id in run_ids:
            await self.cancel(run_id)
        return len(run_ids)

    @contextmanager
    def reader(self, run_id: str, after: int = 0, *, start_by: float | None = None) -> Iterator[RemoteReader]:
        """The run's events after the `after`-th; with `start_by`, a run no worker started by then
        is failed (see the module docstring)."""
        with self.hub.subscribe(run_id, after) as subscription:
            yield RemoteReader(self, subscription, start_by)

    async def give_up_queued(self, run_id: str) -> bool:
        """Fail a run that no worker took in time; False if a worker took it meanwhile."""
        if not await self.rows.finish(run_id, "error", attempt=0, error=QUEUE_MESSAGE):
            return False
        with contextlib.suppress(RedisError):  # the row is finished: a worker taking it later drops it
            await request_cancel(self.redis, self.keys, run_id, "queue-wait", self.cancel_ttl_seconds)
        return True


QUEUE_MESSAGE = "No worker took the answer in time; try again later"
_background: set[asyncio.Task[None]] = set()


class RemoteReader:
    """An `EventReader` over the hub, with the queue wait bounded (see the module docstring)."""

    def __init__(self, runs: RemoteRuns, subscription: HubSubscription, start_by: float | None) -> None:
        self.runs = runs
        self.subscription = subscription
        self.start_by = start_by
        self.on_cut: Callable[[], object] | None = None

    @property
    def cursor(self) -> int:
        return self.subscription.cursor

    @property
    def run_id(self) -> str:
        return self.subscription.run_id

    async def batches(self, idle: float | None = None) -> AsyncIterator[list[Entry]]:
        loop = asyncio.get_running_loop()
        tick = _TICK if idle is None else min(_TICK, idle)
        quiet_since = loop.time()
        try:
            async for batch in self.subscription.batches(idle=tick):
                if batch:
                    quiet_since = loop.time()
                    yield batch
                    continue
                await self._check_queue_wait()
                if idle is not None and loop.time() - quiet_since >= idle:
                    quiet_since = loop.time()
                    yield []
        except RedisUnavailable:
            raise ReaderFailed(REDIS_LOST) from None
        except RunGone:
            raise ReaderFailed("This answer's events are no longer kept") from None
        except EventsLost:
            raise ReaderFailed("Part of this answer's events are no longer kept") from None

    async def _check_queue_wait(self) -> None:
        start_by = self.start_by
        if start_by is None or self.cursor > 0 or time.time() < start_by + QUEUE_GRACE_SECONDS:
            return
        self.start_by = None  # checked once: a worker that took it meanwhile goes on
        try:
            gave_up = await self.runs.give_up_queued(self.subscription.run_id)
        except Exception as exc:
            logger.warning(
                "run %s: could not fail it after its queue wait: %r", self.subscription.run_id, exc
            )
            gave_up = True
        if gave_up:
            raise ReaderFailed(QUEUE_MESSAGE)
