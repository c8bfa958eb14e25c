"""One reader per process for every subscriber to runs' Redis event logs (`StreamHub`).

An API node serves many SSE clients, each following one run's log (the layout is in the docstring
of `streamwise.distributed.eventlog`). Rather than one blocked XREAD, and one connection, per client,
one task reads every subscribed stream in a single `XREAD BLOCK <ms> COUNT <n> STREAMS k1 ... id1 ...`
and queues what it reads in each subscription until its `batches` takes it all, as one batch.

The reading connection is the hub's own, made with the client's settings but without redis-py's
retries (the hub retries itself, backing off from 0.05 s to 2 s); its `CLIENT ID` is asked after each
connect. A blocked XREAD returns when any listed stream gets data; for a new subscription, which must
not wait out the block (at most half the socket timeout), `subscribe` bumps a generation counter and
a second task sends `CLIENT UNBLOCK <id>` from a pool connection, every millisecond for up to a
second, until the reader has started an XREAD of that generation (an unblock that reaches Redis
before the XREAD blocks there does nothing).

Subscriptions of one run share its stream, read from the lowest cursor among them; each gets the
part after its own cursor (an entry `0-<last>` holds events f..last), so a subscription after k gets
exactly k+1, k+2, ..., or `EventsLost` if MAXLEN trimmed some. Gone runs are decided as
`streamwise.distributed.event_reader` does, from the stream's tail (pipelined XREVRANGE + - COUNT 1),
read when a subscription joins and once the stream has been quiet for a block, never every round: a
missing key is `RunGone` after k > 0 or once seen, and at 0 after `missing_seconds`; a tail holding
`End` at or before a cursor ends that subscription.

Failures. A subscriber more than `max_unread_bytes` behind (by `event_size`) is cut off with
`SlowReader`. A Redis error on the reading connection (after one immediate reconnect, for a
connection that went stale) ends every open subscription with `RedisUnavailable`, as `aclose` does;
the reader goes on reconnecting, woken early by a new subscription, which so fails or works within
about a socket timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT

from streamwise.distributed.codec import CodecError, Entry, decode_entries
from streamwise.distributed.eventlog import (
    DEFAULT_MISSING_SECONDS,
    READ_COUNT,
    REDIS_PY_SOCKET_TIMEOUT,
    EventsLost,
    RunGone,
    check_client,
    entry_event_number,
)
from streamwise.distributed.keys import Keys
from streamwise.engine.eventlog import SlowReader, event_size

logger = logging.getLogger(__name__)

BACKOFF_INITIAL = 0.05
BACKOFF_MAX = 2.0
UNBLOCK_EVERY = 0.001
UNBLOCK_SECONDS = 1.0


class RedisUnavailable(ConnectionError):
    """Redis failed or went silent under an open subscription."""


class HubSubscription:
    """One subscriber's place in one run's log; open it with `with hub.subscribe(run_id, after)`."""

    def __init__(self, hub: StreamHub, run_id: str, after: int) -> None:
        if after < 0:
            raise ValueError("after must be >= 0")
        self.run_id, self._hub = run_id, hub
        self.cursor = self._queued = after  # the last event handed out; the last one queued
        self._queue: list[Entry] = []
        self._unread = 0  # what the queue holds, by event_size
        self._ended = self._open = False  # _ended: End is queued, or the log ended before the cursor
        self._error: BaseException | None = None
        self._stream: _Stream | None = None
        self._waiter: asyncio.Future[bool] | None = None
        self._opened_at = 0.0

    def __enter__(self) -> HubSubscription:
        self._hub._open(self)
        return self

    def __exit__(self, *_: object) -> None:
        self._hub._close(self)

    async def batches(self, idle: float | None = None) -> AsyncIterator[list[Entry]]:
        """Yield lists of entries after the cursor until the one holding `End` has been yielded.

        With `idle`, yield [] after that many seconds of silence (heartbeats). Raises `RunGone`,
        `EventsLost`, `RedisUnavailable` and `SlowReader` (see the module docstring).
        """
        while True:
            if self._queue:
                batch, self._queue, self._unread = self._queue, [], 0
                self.cursor += len(batch)
                yield batch
            elif self._error is not None:
                raise self._error
            elif self._ended:
                return
            elif not self._open:
                raise RuntimeError("batches() needs an open subscription: `with hub.subscribe(...)`")
            elif not await self._wait(idle):
                yield []

    async def _wait(self, idle: float | None) -> bool:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        timer = None if idle is None else loop.call_later(idle, _expire, waiter)
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(True)


@dataclass(eq=False)
class _Stream:
    """A run's stream and the subscriptions the hub still reads it for."""

    key: str
    run_id: str
    look_at: float  # when to read the tail next
    existed: bool = False  # the key has been seen
    subs: list[HubSubscription] = field(default_factory=list)


class StreamHub:
    """Reads every subscribed run's stream in one task; see the module docstring."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        block_ms: int = 2000,
        missing_seconds: float = DEFAULT_MISSING_SECONDS,
        max_unread_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        check_client(redis)
        if block_ms < 1 or missing_seconds < 0 or max_unread_bytes < 1:
            raise ValueError("need block_ms >= 1, missing_seconds >= 0, max_unread_bytes >= 1")
        self.redis, self.keys = redis, keys
        self.missing_seconds, self.max_unread_bytes = missing_seconds, max_unread_bytes
        timeout = redis.connection_pool.connection_kwargs.get("socket_timeout", REDIS_PY_SOCKET_TIMEOUT)
        cap = block_ms if timeout is None else int(timeout * 500)  # a block must end before the timeout
        self.block_ms = max(1, min(block_ms, cap))
        self._look_seconds = self.block_ms / 1000  # how long a stream may be quiet before a look
        self._streams: dict[str, _Stream] = {}
        self._open_subs: set[HubSubscription] = set()
        self._conn: AbstractConnection | None = None
        self._client_id: int | None = None
        self._gen = self._read_gen = 0  # subscriptions opened; those the current XREAD includes
        self._blocked = False  # an XREAD is on its way or blocked in Redis
        self._wake = asyncio.Event()  # wakes the reader when it waits (no streams, backoff)
        self._unblock = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    @property
    def subscriptions(self) -> int:
        """How many subscriptions are open (inside their `with`)."""
        return len(self._open_subs)

    async def __aenter__(self) -> StreamHub:
        self._start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def subscribe(self, run_id: str, after: int = 0) -> HubSubscription:
        """A subscription to the run's events after `after`, open inside its `with` block."""
        return HubSubscription(self, run_id, after)

    async def aclose(self) -> None:
        """Stop both tasks, end open subscriptions with `RedisUnavailable("hub closed")`."""
        self._closed = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            while not task.done():  # again: Python 3.11's wait_for (redis-py's send) can lose a cancel
                task.cancel()
                await asyncio.wait([task], timeout=0.05)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail_all("hub closed")
        conn, self._conn, self._client_id = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(RedisError, OSError):
                await conn.disconnect()

    def _start(self) -> None:
        if self._closed:
            raise RuntimeError("the hub is closed")
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(), name="streamwise-hub-reader"),
                asyncio.create_task(self._unblocker(), name="streamwise-hub-unblocker"),
            ]

    def _open(self, sub: HubSubscription) -> None:
        if sub._open or sub._stream is not None:
            raise RuntimeError("a subscription is opened once")
        self._start()
        now = asyncio.get_running_loop().time()
        key = self.keys.events(sub.run_id)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(key, sub.run_id, now)
        stream.subs.append(sub)
        stream.look_at = now
        sub._stream, sub._open, sub._opened_at = stream, True, now
        self._open_subs.add(sub)
        self._gen += 1
        self._wake.set()
        self._unblock.set()

    def _close(self, sub: HubSubscription) -> None:
        sub._open = False
        self._open_subs.discard(sub)
        self._stop(sub, RuntimeError("the subscription was closed"))

    def _stop(self, sub: HubSubscription, error: BaseException | None = None) -> None:
        """Read no more for `sub`: it failed with `error`, or (None) it has all there is to read."""
        if error is None:
            sub._ended = True
        elif sub._error is None and not sub._ended:
            sub._error = error
        stream = sub._stream
        if stream is not None and sub in stream.subs:
            stream.subs.remove(sub)
            if not stream.subs and self._streams.get(stream.key) is stream:
                del self._streams[stream.key]
        sub._wake()

    def _fail_all(self, reason: str, cause: BaseException | None = None) -> None:
        for stream in list(self._streams.values()):
            for sub in list(stream.subs):
                error = RedisUnavailable(reason)
                error.__cause__ = cause
                self._stop(sub, error)

    async def _run(self) -> None:
        backoff, retried = BACKOFF_INITIAL, False
        while not self._closed:
            self._wake.clear()
            try:
                await self._round()
                backoff, retried = BACKOFF_INITIAL, False
            except Exception as exc:
                await self._drop_connection()
                if isinstance(exc, RedisConnectionError) and not retried:
                    retried = True  # perhaps a connection that went stale: reconnect once, at once
                    continue
                if not isinstance(exc, RedisError):
                    logger.exception("the stream hub failed")
                elif backoff == BACKOFF_INITIAL:
                    logger.warning("the stream hub lost Redis: %r", exc)
                self._fail_all(f"Redis failed under the subscription: {exc!r}", exc)
                await asyncio.sleep(BACKOFF_INITIAL)
                await self._wait_wake(backoff - BACKOFF_INITIAL)  # a new subscription retries now
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _round(self) -> None:
        """Connect if need be, read the tails due, then one XREAD of every stream."""
        conn = await self._connected()
        if not self._streams:
            self._read_gen = self._gen
            await self._wait_wake(self._look_seconds)
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if any(stream.look_at <= now for stream in self._streams.values()):
            soon = now + self._look_seconds / 2  # look at those nearly due too, in the same pipeline
            await self._look(conn, [s for s in self._streams.values() if s.look_at <= soon])
        streams = list(self._streams.values())
        if not streams:
            return
        starts = [min(sub._queued for sub in stream.subs) for stream in streams]
        until_look = min(stream.look_at for stream in streams) - loop.time()
        block = max(1, min(self.block_ms, int(until_look * 1000) + 1))
        command: list[EncodableT] = ["XREAD", "BLOCK", block, "COUNT", READ_COUNT, "STREAMS"]
        command += [stream.key for stream in streams] + [f"0-{start}" for start in starts]
        self._read_gen, self._blocked = self._gen, True
        try:
            (reply,) = await self._call(conn, [command])
        finally:
            self._blocked = False
        if isinstance(reply, ResponseError):
            raise reply
        if reply:
            now = loop.time()
            found = {stream.key: (stream, start) for stream, start in zip(streams, starts, strict=True)}
            for key, rows in reply.items() if isinstance(reply, dict) else reply:
                stream, start = found[key.decode()]
                stream.existed, stream.look_at = True, now + self._look_seconds
                for row in rows:
                    if not self._deliver(stream, start, row):
                        break

    def _deliver(self, stream: _Stream, start: int, row: Any) -> bool:
        """Queue one entry of a stream read from event `start` on; whether anyone still reads it."""
        readers = [sub for sub in stream.subs if sub._queued >= start]  # the read covers them
        try:
            first, last, batch, ended = _parse(stream.run_id, row)
        except CodecError as exc:
            for sub in readers:
                self._stop(sub, exc)
            return bool(stream.subs)
        for sub in readers:
            if last <= sub._queued:
                continue
            if first > sub._queued + 1:
                lost = f"run {stream.run_id}: events {sub._queued + 1}..{first - 1} were trimmed"
                self._stop(sub, EventsLost(lost))
                continue
            part = batch[sub._queued + 1 - first :]
            sub._queue.extend(part)
            sub._queued = last
            sub._unread += sum(map(event_size, part))
            if sub._unread > self.max_unread_bytes:
                sub._queue, sub._unread = [], 0
                self._stop(sub, SlowReader(f"reader fell more than {self.max_unread_bytes} bytes behind"))
            elif ended:
                self._stop(sub)
            else:
                sub._wake()
        return bool(stream.subs)

    async def _look(self, conn: AbstractConnection, streams: list[_Stream]) -> None:
        """Read the tails of `streams` (one pipeline): gone runs, logs that ended before a cursor."""
        replies = await self._call(conn, [("XREVRANGE", s.key, "+", "-", "COUNT", 1) for s in streams])
        now = asyncio.get_running_loop().time()
        for stream, reply in zip(streams, replies, strict=True):
            stream.look_at = now + self._look_seconds
            if not reply:
                self._missing(stream, now)
                continue
            try:
                if isinstance(reply, ResponseError):  # not a stream, say: only its readers fail
                    raise RedisUnavailable(f"run {stream.run_id}: {reply}")
                _, last, _, ended = _parse(stream.run_id, reply[0])
            except (RedisUnavailable, CodecError) as exc:
                for sub in list(stream.subs):
                    self._stop(sub, exc)
                continue
            stream.existed = True
            for sub in list(stream.subs) if ended else []:
                if sub._queued >= last:
                    self._stop(sub)

    def _missing(self, stream: _Stream, now: float) -> None:
        existed, stream.existed = stream.existed, False
        for sub in list(stream.subs):
            if existed or sub._queued > 0:
                self._stop(sub, RunGone(f"run {stream.run_id}: its events expired or were deleted"))
            elif now - sub._opened_at >= self.missing_seconds:
                written = f"no events were written within {self.missing_seconds:g} s"
                self._stop(sub, RunGone(f"run {stream.run_id}: {written}"))
            else:
                stream.look_at = min(stream.look_at, sub._opened_at + self.missing_seconds)

    async def _connected(self) -> AbstractConnection:
        conn = self._conn
        if conn is None:
            conn = self._conn = self.redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]
            conn.retry = Retry(NoBackoff(), 0)  # the hub retries by itself, with backoff
        if self._client_id is None or not conn.is_connected:
            self._client_id = None
            await conn.connect()
            (reply,) = await self._call(conn, [("CLIENT", "ID")])
            if isinstance(reply, ResponseError):
                raise reply
            self._client_id = int(reply)
            now = asyncio.get_running_loop().time()
            for stream in self._streams.values():  # Redis may have restarted without the data
                stream.look_at = now
        return conn

    async def _drop_connection(self) -> None:
        self._client_id, self._blocked = None, False
        if self._conn is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._conn.disconnect(nowait=True)

    @staticmethod
    async def _call(conn: AbstractConnection, commands: Sequence[Sequence[EncodableT]]) -> list[Any]:
        """Send commands in one write and read their replies; an error reply is returned, not raised."""
        await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies

    async def _wait_wake(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await self._wake.wait()

    async def _unblocker(self) -> None:
        """After a subscribe: CLIENT UNBLOCK the reader until it runs an XREAD that includes it."""
        loop = asyncio.get_running_loop()
        while not self._closed:
            await self._unblock.wait()
            self._unblock.clear()
            deadline = loop.time() + UNBLOCK_SECONDS
            with contextlib.suppress(TimeoutError, RedisError):
                async with asyncio.timeout_at(deadline):  # and the loop's test: a timeout can be lost
                    while self._read_gen < self._gen and self._streams and loop.time() < deadline:
                        client_id = self._client_id
                        if self._blocked and client_id is not None:
                            await self.redis.client_unblock(client_id)
                        await asyncio.sleep(UNBLOCK_EVERY)


def _parse(run_id: str, row: Any) -> tuple[int, int, list[Entry], bool]:
    """(first event, last event, entries, whether End is among them) of a raw stream entry."""
    entry_id, raw = row
    try:
        fields = raw if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2], strict=True))
        first, last = int(fields[b"f"]), entry_event_number(entry_id)
        batch, ended = decode_entries(fields[b"d"])
    except (KeyError, ValueError, TypeError) as exc:  # CodecError is a ValueError
        raise CodecError(f"run {run_id}: bad stream entry {entry_id!r}: {exc}") from None
    if len(batch) != last - first + 1:
        raise CodecError(
            f"run {run_id}: entry {entry_id!r} holds {len(batch)} events, not {last - first + 1}"
        )
    return first, last, batch, ended


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
