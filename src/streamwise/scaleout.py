"""Scale-out, put together from settings: an API node's dispatcher and a worker, over one Redis.

Without `STREAMWISE_REDIS_URL` none of this runs: answers are run in the server's own process. With
it, `streamwise start --role api` serves the API and hands every run to the workers, `streamwise
worker` runs them, and `--role all` (the default with a Redis URL) does both in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from streamwise.answerers import Answerers
from streamwise.distributed.cancel import CancelListener
from streamwise.distributed.dispatch import JobQueue, consumer_name
from streamwise.distributed.dispatcher import QUEUE_GRACE_SECONDS, RemoteRuns
from streamwise.distributed.hub import StreamHub
from streamwise.distributed.keys import Keys
from streamwise.distributed.worker import Worker, WorkerOptions
from streamwise.engine.ports import MessageStore
from streamwise.engine.runs import RunManager
from streamwise.settings import Settings
from streamwise.store.database import Database
from streamwise.store.runs import RunRepository

logger = logging.getLogger("streamwise.scaleout")

CHECK_SECONDS = 2.0
RETRIES = 2


def redis_client(settings: Settings) -> aioredis.Redis:
    """The process's Redis client: bytes in and out, and every call bounded by the socket timeout.

    A call that fails to connect, or meets a connection the server closed (every pooled connection,
    after a Redis restart), is retried twice, 50 and 100 ms later; a timeout is not retried, since the
    command may have run. (A connection that breaks after a command was sent may still repeat it; a
    job submitted twice is recognised by the worker, see `distributed.worker`.)
    """
    if settings.redis_url is None:
        raise ValueError("no Redis URL is set (STREAMWISE_REDIS_URL)")
    timeout = settings.redis_timeout_seconds
    return aioredis.Redis.from_url(
        settings.redis_url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry=Retry(
            ExponentialBackoff(cap=0.5, base=0.05), RETRIES, supported_errors=(RedisConnectionError,)
        ),
    )


def keys_for(settings: Settings) -> Keys:
    return Keys(prefix=settings.redis_prefix)


async def redis_healthy(redis: aioredis.Redis) -> bool:
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            return bool(await redis.ping())
    except (RedisError, TimeoutError, OSError):
        return False


@asynccontextmanager
async def api_node(
    settings: Settings, redis: aioredis.Redis, database: Database
) -> AsyncIterator[RemoteRuns]:
    """The dispatcher of an API node, with its one reader task, for the duration of the block."""
    keys = keys_for(settings)
    hub = StreamHub(
        redis,
        keys,
        missing_seconds=settings.queue_wait_seconds + QUEUE_GRACE_SECONDS + settings.redis_timeout_seconds,
        max_unread_bytes=settings.stream_buffer_bytes,
    )
    async with hub:
        yield RemoteRuns(
            redis=redis,
            keys=keys,
            queue=JobQueue(redis, keys),
            hub=hub,
            rows=RunRepository(database),
            name=consumer_name("api"),
            queue_wait_seconds=settings.queue_wait_seconds,
            run_deadline_seconds=settings.run_deadline_seconds,
            cancel_ttl_seconds=settings.queue_wait_seconds + settings.run_deadline_seconds,
        )


def make_worker(
    settings: Settings,
    redis: aioredis.Redis,
    database: Database,
    messages: MessageStore,
    runs: RunManager,
    answerers: Answerers,
    cancels: CancelListener | None = None,
) -> Worker:
    keys = keys_for(settings)
    return Worker(
        redis=redis,
        keys=keys,
        queue=JobQueue(redis, keys),
        runs=runs,
        rows=RunRepository(database),
        messages=messages,
        build_answerer=answerers.build,
        options=WorkerOptions(
            name=consumer_name("worker"),
            concurrency=settings.worker_concurrency,
            lease_seconds=settings.worker_lease_seconds,
            max_attempts=settings.worker_max_attempts,
            resume_seconds=settings.resume_seconds,
            ttl_seconds=int(settings.run_deadline_seconds + settings.queue_wait_seconds + 60),
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
        ),
        cancels=cancels,
    )


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """The worker serving in a task of its own for the duration of the block; stopped after it."""
    task = asyncio.create_task(worker.serve(), name="worker")
    try:
        yield task
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            await task
