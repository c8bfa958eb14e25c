"""A worker: takes runs from the job stream, runs them, writes their events to Redis.

For each job it takes (no more than it has free slots) or takes over (a job whose worker went
silent past the lease), in this order:

1. reads the job; past `max_attempts` deliveries, or past its start-by time (nobody was there to
   take it), the run fails with `error` then `end` without being run;
2. begins an attempt in one round trip to Redis (`streamwise.distributed.attempts`): a first
   delivery of a run that already has events is a job submitted twice, dropped; else the INCR of
   the run's attempt (the fencing token), the log's length and the cancel marker. Then it claims
   the run's row in the database with that attempt; a row that is no longer active (the API node
   gave up on it, or another attempt finished it) is acknowledged and left alone;
3. a run already cancelled ends there; else its cancel marker is watched (the process's one
   `CancelListener`, which checks the marker again as the watch begins);
4. on a take-over (the log already holds events): a run whose earlier attempt called a tool that
   may have changed something outside is not run again (it fails with a clear error); any other
   is started again after a `restart` event, with the same message ids, so it keeps its rows;
5. runs it through the `RunManager` (the same `Run` as in-process runs, with the Redis writer as
   its sink), renewing the lease every third of it and checking the cancel marker as it renews;
6. flushes the log, finishes the row (only under its own attempt), then writes `end` (so a reader
   that sees `end` finds the row final: an API node answering JSON reads the failure's kind there),
   shortens the log's TTL to the resume window, and acknowledges the job.

A worker told to stop (SIGTERM) takes no more jobs and hands back those it holds: their runs stop
without writing anything more, and another worker takes each over at once (step 4's `restart`).

A worker whose lease was lost (it stalled, another took over) is fenced: its appends are refused,
its run is stopped, and nothing it would store is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streamwise.distributed.attempts import begin_attempt
from streamwise.distributed.cancel import CancelListener, is_cancelled
from streamwise.distributed.codec import decode_entries
from streamwise.distributed.dispatch import Consumer, Job, JobQueue
from streamwise.distributed.eventlog import Fenced, RedisEventWriter
from streamwise.distributed.jobs import JobError, RunJob
from streamwise.distributed.keys import Keys
from streamwise.distributed.worker_sink import FencedStore, WorkerSink, failure_kind
from streamwise.engine.events import Abort, CalledTools, End, Error, Event, Restart, Start
from streamwise.engine.ports import Answerer, MessageStore
from streamwise.engine.run import Run
from streamwise.engine.runs import RunManager
from streamwise.engine.tools import Tool
from streamwise.store.runs import RunRepository, RunState

logger = logging.getLogger("streamwise.worker")

BuildAnswerer = Callable[[str, Mapping[str, Any]], Awaitable[Answerer]]
RESTART_REASON = "the worker answering was lost; the answer starts again"
_BACKOFF_MAX = 2.0


@dataclass(frozen=True)
class WorkerOptions:
    name: str
    concurrency: int = 50
    lease_seconds: float = 15.0
    max_attempts: int = 3
    resume_seconds: float = 60.0  # how long a finished run's events stay readable
    ttl_seconds: int = 3600  # how long a running run's events live without an append
    shutdown_grace_seconds: float = 10.0


def unsafe_tools(answerer: Answerer, earlier: Sequence[Any]) -> list[str]:
    """The tools an earlier attempt called (its `calledTools` events) that may have changed something
    outside: every tool not known, from the answerer's own tools, to have no side effects."""
    tools = getattr(answerer, "tools", ())
    safe = {tool.schema.name for tool in tools if isinstance(tool, Tool) and not tool.side_effects}
    called = [
        str(call.get("tool", "?"))
        for entry in earlier
        if type(entry) is CalledTools
        for call in entry.data
        if isinstance(call, dict)
    ]
    return sorted({name for name in called if name not in safe})


@dataclass
class _Active:
    job: Job
    spec: RunJob
    run: Run | None = None
    sink: WorkerSink | None = None
    lost: bool = False


@dataclass
class Worker:
    redis: aioredis.Redis
    keys: Keys
    queue: JobQueue
    runs: RunManager
    rows: RunRepository
    messages: MessageStore
    build_answerer: BuildAnswerer
    options: WorkerOptions
    cancels: CancelListener | None = None  # the process's listener; one of its own otherwise
    _active: dict[str, _Active] = field(default_factory=dict)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _slot_freed: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _taking: asyncio.Future[list[Job]] | None = None

    @property
    def active(self) -> int:
        return len(self._active)

    def stop(self) -> None:
        """Take no more jobs; `serve` then hands back what runs and returns."""
        self._stopping.set()
        if self._taking is not None:
            self._taking.cancel()  # a blocked XREADGROUP: what it got unseen is handed back too

    async def serve(self) -> None:
        """Take, run and acknowledge jobs until `stop()`; then hand back the runs it holds (within
        the shutdown grace, see `_hand_back`) and leave the consumer group."""
        options = self.options
        async with contextlib.AsyncExitStack() as stack:
            if self.cancels is None:
                self.cancels = await stack.enter_async_context(CancelListener(self.redis, self.keys))
            consumer = self.queue.consumer(
                options.name,
                slots=options.concurrency,
                lease_ms=int(options.lease_seconds * 1000),
                block_ms=1000,
            )
            await self._until_ready(consumer)
            stack.push_async_callback(consumer.aclose)
            renewer = asyncio.create_task(self._renew(consumer), name="worker-renew")
            try:
                await self._take(consumer)
            finally:
                await self._hand_back(options.shutdown_grace_seconds)
                renewer.cancel()
                await asyncio.gather(renewer, return_exceptions=True)

    async def _hand_back(self, grace: float) -> None:
        """Stop every run this worker holds without a word more to its stream or its rows; the
        consumer's `aclose` then hands the jobs back, and another worker (or this one, restarted)
        takes each over at its next reclaim, as after a crash but without waiting out the lease:
        the stream gets `restart` and the answer again."""
        for active in list(self._active.values()):
            active.lost = True
            if active.sink is not None:
                active.sink.silence()
            if active.run is not None:
                active.run.cancel("shutdown")
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace)
        await self.runs.drain(grace)  # whatever started meanwhile

    async def _until_ready(self, consumer: Consumer) -> None:
        delay = 0.05
        while not self._stopping.is_set():
            try:
                await self.queue.ensure_group()
                return
            except RedisError as exc:
                logger.warning("worker %s: Redis unavailable (%s); retrying", self.options.name, exc)
                await self._pause(delay)
                delay = min(_BACKOFF_MAX, delay * 2)
        del consumer

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _take(self, consumer: Consumer) -> None:
        loop = asyncio.get_running_loop()
        reclaim_at = 0.0
        delay = 0.05
        while not self._stopping.is_set():
            try:
                jobs: list[Job] = []
                if loop.time() >= reclaim_at:
                    jobs = await consumer.reclaim()
                    reclaim_at = loop.time() + consumer.renew_every
                if consumer.free_slots > 0:
                    self._taking = asyncio.ensure_future(consumer.take(consumer.free_slots))
                    try:
                        jobs += await self._taking
                    except asyncio.CancelledError:
                        if not (self._stopping.is_set() and self._taking.cancelled()):
                            raise
                    finally:
                        self._taking = None
                else:
                    self._slot_freed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._slot_freed.wait(), 1.0)
                delay = 0.05
            except RedisError as exc:
                logger.warning("worker %s: taking jobs failed (%s); retrying", self.options.name, exc)
                await self._pause(delay)
                delay = min(_BACKOFF_MAX, delay * 2)
                continue
            for job in jobs:
                task = asyncio.create_task(self._handle(consumer, job), name=f"job-{job.run_id}")
                self._tasks.add(task)
                task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("a job failed unexpectedly", exc_info=task.exception())

    async def _handle(self, consumer: Consumer, job: Job) -> None:
        try:
            spec = RunJob.loads(job.payload)
        except JobError as exc:
            logger.error("dropping job %s of run %s: %s", job.entry_id, job.run_id, exc)
            await consumer.ack(job)
            return
        active = _Active(job, spec)
        self._active[spec.run_id] = active
        try:
            await self._run_job(consumer, active)
        except RedisError as exc:
            # The lease runs out and another worker (or this one) takes the job over later.
            consumer.forget(job)
            logger.warning(
                "run %s: Redis failed under it (%s); leaving it to be taken over", spec.run_id, exc
            )
        finally:
            self._active.pop(spec.run_id, None)

    async def _run_job(self, consumer: Consumer, active: _Active) -> None:
        job, spec, options = active.job, active.spec, self.options
        run_id = spec.run_id
        begun = await begin_attempt(
            self.redis, self.keys, run_id, first_delivery=job.deliveries == 1, ttl_seconds=options.ttl_seconds
        )
        if begun is None:  # a first delivery of a run that has events: the job was submitted twice
            logger.warning("run %s: a second job for it; dropping that one", run_id)
            await consumer.ack(job)
            return
        if begun.ended:  # only the acknowledgement was lost
            await self._finished(consumer, job, run_id)
            return
        attempt, start = begun.number, begun.start
        writer = RedisEventWriter(
            self.redis, self.keys, run_id, attempt, start=start, ttl_seconds=options.ttl_seconds
        )
        if not await self.rows.claim(run_id, attempt, options.name):
            logger.info("run %s is no longer waiting to run; dropping its job", run_id)
            await consumer.ack(job)
            return
        earlier = await self._earlier_events(run_id) if start else []
        refusal = self._refusal(job, spec, earlier)
        reason = begun.cancelled  # one arriving later is the watch's (it checks the marker first)
        if refusal is not None or reason is not None:
            ended: list[Event] = [Abort()] if refusal is None else [Error(refusal)]
            status: RunState = "aborted" if refusal is None else "error"
            await self._end_unrun(consumer, job, writer, attempt, ended, status, refusal, started=start > 0)
            return
        try:
            answerer = await self.build_answerer(spec.request.chatflow_id, spec.override_config)
        except Exception as exc:  # the chatflow was deleted or can no longer be built
            message = getattr(exc, "message", None) or "The chatflow could not be built"
            await self._end_unrun(
                consumer, job, writer, attempt, [Error(message)], "error", message, started=start > 0
            )
            return
        unsafe = unsafe_tools(answerer, earlier)
        if unsafe:
            message = (
                f"The answer was cut off when its worker was lost, after calling {', '.join(unsafe)}; it is "
                "not run again, as that may change something twice. Ask again to start a new answer."
            )
            await self._end_unrun(
                consumer, job, writer, attempt, [Error(message)], "error", message, started=True
            )
            return
        sink = WorkerSink(writer, started=start > 0)
        if start:
            sink.emit(Restart({"attempt": attempt, "reason": RESTART_REASON}))
        attempt_key = self.keys.attempt(run_id)

        async def fenced() -> bool:
            if sink.fenced or active.lost:
                return True
            try:
                current = await self.redis.get(attempt_key)
            except RedisError:
                return False  # no other worker can take the run over without Redis either
            return current is not None and current != str(attempt).encode()

        store = FencedStore(self.messages, fenced, taken_over=start > 0 or job.deliveries > 1)
        if self._stopping.is_set():  # shutting down: the job goes back unstarted
            logger.info("run %s: handed back unstarted, the worker is stopping", run_id)
            return
        run = self.runs.start(
            spec.request,
            answerer,
            sink=sink,
            run_id=run_id,
            message_ids=(spec.user_message_id, spec.chat_message_id),
            store=store,
        )
        active.run, active.sink = run, sink
        sink.on_fail = lambda exc: run.cancel("abort" if isinstance(exc, Fenced) else "lost")
        assert self.cancels is not None
        with self.cancels.watch(run_id, lambda _reason: run.cancel("abort")):
            deadline = max(0.0, spec.deadline - time.time()) if spec.deadline else None
            timer = (
                asyncio.get_running_loop().call_later(deadline, run.cancel, "deadline") if deadline else None
            )
            try:
                outcome = await run.wait()
            finally:
                if timer is not None:
                    timer.cancel()
        with contextlib.suppress(Exception):
            await writer.flush()  # everything but `end`, which the sink holds back
        if sink.handed_back or sink.fenced or active.lost:
            with contextlib.suppress(Exception):
                await writer.aclose()
            if sink.handed_back:
                logger.info("run %s: attempt %d handed back (the worker is stopping)", run_id, attempt)
            else:
                logger.warning("run %s: attempt %d was taken over; its results are dropped", run_id, attempt)
            return
        if writer.failure is not None:  # Redis failed under it: its client was told (by its API node)
            await self.rows.finish(
                run_id, "error", attempt=attempt, error=outcome.error, failure="Unavailable"
            )
            raise RedisError(f"run {run_id}: {writer.failure}")
        failure = failure_kind(outcome.failure) if outcome.failure is not None else None
        try:
            await self.rows.finish(
                run_id, outcome.status, attempt=attempt, error=outcome.error, failure=failure
            )
        finally:  # `end` once the row is final (an API node reads the failure's kind there), or failed
            sink.send_end()
            closed = await _close(writer)
        if closed:
            await self._finished(consumer, job, run_id)

    def _refusal(self, job: Job, spec: RunJob, earlier: list[Any]) -> str | None:
        """Why the run must fail without running, if it must."""
        if job.deliveries > self.options.max_attempts:
            return f"The answer failed: the workers running it were lost {job.deliveries - 1} times"
        if not earlier and spec.start_by and time.time() > spec.start_by:
            return "No worker took the answer in time"
        if spec.deadline and time.time() > spec.deadline:
            return "The answer did not finish within its deadline"
        return None

    async def _earlier_events(self, run_id: str) -> list[Any]:
        """The events earlier attempts wrote (only the non-token ones matter here)."""
        rows: Any = await self.redis.xrange(self.keys.events(run_id), "-", "+")
        events: list[Any] = []
        for _entry_id, fields in rows:
            batch, _ended = decode_entries(fields[b"d"])
            events.extend(entry for entry in batch if not isinstance(entry, str))
        return events

    async def _end_unrun(
        self,
        consumer: Consumer,
        job: Job,
        writer: RedisEventWriter,
        attempt: int,
        ended: list[Event],
        status: RunState,
        error: str | None,
        *,
        started: bool,
    ) -> None:
        """End a run that is not run: its stream gets `start` (unless it has one), the reason, `end`."""
        if not started:
            writer.emit(Start(""))
        for event in ended:
            writer.emit(event)
        try:
            await self.rows.finish(job.run_id, status, attempt=attempt, error=error)
        finally:  # `end` once the row is final, as after a run
            writer.emit(End())
            await writer.aclose()
        await self._finished(consumer, job, job.run_id)

    async def _finished(self, consumer: Consumer, job: Job, run_id: str) -> None:
        """The run's events now live only for the resume window; the job is done."""
        ttl = max(1, int(self.options.resume_seconds))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.expire(self.keys.events(run_id), ttl)
            pipe.expire(self.keys.attempt(run_id), ttl)
            await pipe.execute()
        await consumer.ack(job)

    async def _renew(self, consumer: Consumer) -> None:
        """Every third of the lease: renew each held job, and look at its cancel marker."""
        while True:
            await asyncio.sleep(consumer.renew_every)
            for active in list(self._active.values()):
                try:
                    if not await consumer.renew(active.job):
                        active.lost = True
                        if active.run is not None:
                            active.run.cancel("abort")
                        continue
                    reason = await is_cancelled(self.redis, self.keys, active.spec.run_id)
                    if reason is not None and active.run is not None:
                        active.run.cancel("abort")
                except RedisError as exc:
                    logger.warning("renewing run %s failed: %s", active.spec.run_id, exc)


async def _close(writer: RedisEventWriter) -> bool:
    """Flush and close the run's writer; False if the run was taken over meanwhile (fenced). A Redis
    failure propagates (the job is then left to be taken over)."""
    try:
        await writer.aclose()
    except Fenced:
        logger.warning("run %s: taken over as it ended; its end is another attempt's", writer.run_id)
        return False
    return True
