"""Cancelling a run from any node, and noticing it in the process that runs it.

The marker key (`Keys.cancel(run_id)`, holding the reason, with a TTL) is the truth; the notice
published on `Keys.cancels` (the run id) is only a hint to look at it now (a notice for a run
without a marker fires nothing). So a cancel is never missed for good: whoever picks up, reclaims
or renews a run checks the marker (`is_cancelled`), and a `CancelListener` checks the markers
itself whenever a notice may have been lost.

`CancelListener` keeps ONE pub/sub connection per process for every local run, however many:
`watch(run_id, callback)` only adds an entry to a dict, and the handle it returns (a context
manager) takes it out. Two tasks do the work:

- the listener subscribes to the channel and reads it, in a loop that reconnects with capped,
  jittered exponential backoff when Redis drops, fails or goes quiet (a PING every `ping_interval`
  seconds; nothing heard for three of them counts as a dead connection). Every subscribe
  confirmation, the first one and each after a reconnect (ours, or redis-py's own, which
  resubscribes by itself), queues a check of every watched run, because notices published while we
  were not subscribed are lost;
- the checker reads the markers of queued runs in pipelined GETs (batches of `batch`) and fires the
  callbacks of those that have one; a failed read is queued again and retried with backoff. A
  notice for a watched run queues it too, and so does `watch` itself, which closes the gap between a
  caller's pick-up check and its watch.

A callback is called once, with the reason, from the checker task; then its watch is dropped. It
must be quick and must not block (set an event, cancel a task); an exception in it is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from itertools import islice
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from streamwise.distributed.keys import Keys

logger = logging.getLogger(__name__)

CancelCallback = Callable[[str], object]


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


async def request_cancel(
    redis: aioredis.Redis, keys: Keys, run_id: str, reason: str, ttl_seconds: float
) -> int:
    """SET <cancel marker> <reason> PX <ttl>, then PUBLISH <cancels> <run_id> (one round trip).

    The TTL must outlast the run's time in the queue and running. Returns how many listening
    processes received the notice.
    """
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(keys.cancel(run_id), reason, px=max(1, round(ttl_seconds * 1000)))
        pipe.publish(keys.cancels, run_id)
        _, receivers = await pipe.execute()
    return int(receivers)


async def is_cancelled(redis: aioredis.Redis, keys: Keys, run_id: str) -> str | None:
    """GET <cancel marker>: the reason the run was cancelled for, or None."""
    value = await redis.get(keys.cancel(run_id))
    return None if value is None else _text(value)


class Watch:
    """One watched run; `close()` (or leaving `with`) unregisters it. `reason` once it fired."""

    def __init__(self, listener: CancelListener, run_id: str, callback: CancelCallback) -> None:
        self.run_id = run_id
        self.callback = callback
        self.reason: str | None = None
        self._listener = listener

    def close(self) -> None:
        self._listener._unwatch(self)

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class CancelListener:
    """`async with CancelListener(redis, keys) as listener:` one subscription for the process."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        ping_interval: float = 5.0,
        batch: int = 500,
    ) -> None:
        if not 0 < backoff_initial <= backoff_max or ping_interval <= 0 or batch < 1:
            raise ValueError("need 0 < backoff_initial <= backoff_max, ping_interval > 0, batch >= 1")
        self._redis = redis
        self._keys = keys
        self._backoff = (backoff_initial, backoff_max)
        self._ping_interval = ping_interval
        self._batch = batch
        self._watches: dict[str, set[Watch]] = {}
        self._to_check: dict[str, None] = {}  # an ordered set
        self._wake = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._open = False

    def __len__(self) -> int:
        """The watches registered (fired and closed ones are gone)."""
        return sum(len(watches) for watches in self._watches.values())

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    async def wait_subscribed(self) -> None:
        await self._subscribed.wait()

    async def __aenter__(self) -> CancelListener:
        if self._open or self._tasks:
            raise RuntimeError("a CancelListener is entered once")
        self._open = True
        self._tasks = [
            asyncio.create_task(self._listen(), name="cancel-listener"),
            asyncio.create_task(self._check(), name="cancel-checker"),
        ]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop both tasks and close the pub/sub connection (UNSUBSCRIBE by disconnecting)."""
        self._open = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._watches.clear()
        self._to_check.clear()
        self._subscribed.clear()

    def watch(self, run_id: str, callback: CancelCallback) -> Watch:
        """Call `callback(reason)` once when `run_id` is cancelled; its marker is checked at once."""
        if not self._open:
            raise RuntimeError("the CancelListener is not open")
        watch = Watch(self, run_id, callback)
        self._watches.setdefault(run_id, set()).add(watch)
        self._queue([run_id])
        return watch

    def _unwatch(self, watch: Watch) -> None:
        watches = self._watches.get(watch.run_id)
        if watches is None:
            return
        watches.discard(watch)
        if not watches:
            del self._watches[watch.run_id]
            self._to_check.pop(watch.run_id, None)

    def _queue(self, run_ids: Iterable[str]) -> None:
        for run_id in run_ids:
            if run_id in self._watches:
                self._to_check[run_id] = None
        if self._to_check:
            self._wake.set()

    def _delay(self, delay: float) -> float:
        """The backoff after `delay` (each sleep is jittered down to as little as half of it)."""
        return min(delay * 2, self._backoff[1])

    async def _listen(self) -> None:
        delay = self._backoff[0]
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._keys.cancels)
                await self._pump(pubsub)
            except (RedisError, OSError) as exc:
                if self._subscribed.is_set():
                    logger.warning("cancel listener lost Redis (%s); reconnecting", exc)
                    delay = self._backoff[0]
                else:
                    logger.debug("cancel listener cannot reach Redis (%s)", exc)
            except Exception:
                logger.exception("cancel listener failed; starting over")
            finally:
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = self._delay(delay)

    async def _pump(self, pubsub: PubSub) -> None:
        clock = asyncio.get_running_loop().time
        heard = pinged = clock()
        while True:
            message: Any = await pubsub.get_message(timeout=min(1.0, self._ping_interval))
            now = clock()
            if message is not None:
                heard = now
                if message["type"] == "subscribe":
                    if not self._subscribed.is_set():
                        logger.debug("cancel listener subscribed to %s", self._keys.cancels)
                    self._subscribed.set()
                    self._queue(list(self._watches))
                elif message["type"] == "message":
                    self._queue([_text(message["data"])])
            if now - heard > 3 * self._ping_interval:
                raise RedisConnectionError("no reply from Redis to PING")
            if now - pinged >= self._ping_interval:
                await pubsub.ping()
                pinged = now

    async def _check(self) -> None:
        delay = self._backoff[0]
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._to_check:
                batch = list(islice(self._to_check, self._batch))
                for run_id in batch:
                    del self._to_check[run_id]
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for run_id in batch:
                            pipe.get(self._keys.cancel(run_id))
                        values = await pipe.execute()
                except (RedisError, OSError) as exc:
                    logger.debug("cancel listener cannot read markers (%s); retrying", exc)
                    self._queue(batch)
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = self._delay(delay)
                    continue
                delay = self._backoff[0]
                for run_id, value in zip(batch, values, strict=True):
                    if value is not None:
                        self._fire(run_id, _text(value))

    def _fire(self, run_id: str, reason: str) -> None:
        self._to_check.pop(run_id, None)
        for watch in self._watches.pop(run_id, set()):
            watch.reason = reason
            try:
                watch.callback(reason)
            except Exception:
                logger.exception("cancel callback for run %s failed", run_id)
