"""A run's event log in a Redis stream: one writer (the worker running the run), any number of readers.

Layout. The log is the stream `Keys.events(run_id)`. Events are numbered from 1 in emission order
(a cursor is the number of the last event read, 0 for none). A stream entry holds consecutive
events: its ID is `0-<number of its last event>`, its fields `f` (number of its first event), `a`
(the writer's attempt) and `d` (the events, as `streamwise.distributed.codec` writes a batch).
Redis's rules for explicit IDs: `<ms>-<seq>`, ordered by ms then seq; an XADD must name an ID
above the stream's last generated one (which stays put when entries are trimmed), and `0-0` is
refused. Ours have ms 0 and a seq that only grows (an entry holds at least one event), so "the
events after k" is XREAD from `0-k` (XRANGE from `(0-k`, exclusive); the first entry returned may start at or
before k (k inside its batch), and the reader drops that part.

Writing. `emit`/`emit_tokens` (the engine's `EventSink`; call them on the loop's thread) only
buffer. An entry goes out at once when the writer has been quiet for `batch_seconds` (nothing
appended since), and else `batch_seconds` after the first event buffered (or when the previous
append returns, if later), with all that is buffered: a burst of tokens is one XADD, and a slow
model's tokens are not held back. The run's first token, `End`, `flush()` and `aclose()` send at
once (the first token is what a client waits for). An append is one Lua script (`_APPEND`, contract above it)
that checks the fencing token, XADDs with `MAXLEN ~ maxlen` and renews the TTL of the run's events
and attempt keys, atomically. Tokens come from `take_over` (INCR of `Keys.attempt`); a worker whose
run was taken over holds an older one, its appends are refused, and `flush`, `aclose` and every
later `emit` raise `Fenced`. A writer that failed (`Fenced`, `RunGone`, `LogConflict`, a Redis
error) stays failed and drops what it had buffered. A worker taking over calls `take_over` and
then `last_event_number` (its `start`), in that order: after the INCR no older attempt can append.

Reading is `streamwise.distributed.event_reader`.

Failures. Redis errors propagate as redis-py raises them, after the client's own retries:
`redis.exceptions.ConnectionError` (refused, reset or closed connections; subclasses include
`AuthenticationError`, `BusyLoadingError`) and `redis.exceptions.TimeoutError` (socket timeouts;
in redis-py a `RedisError`, not a `ConnectionError`). The client's socket timeouts bound every call.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.typing import EncodableT

from streamwise.distributed.codec import check_event, decode_entries, dumps_values
from streamwise.distributed.keys import Keys
from streamwise.engine.events import End, Event

logger = logging.getLogger(__name__)

DEFAULT_MAXLEN = 100_000  # stream entries (batches), not events
DEFAULT_TTL_SECONDS = 3600  # renewed by every append
DEFAULT_MISSING_SECONDS = 30.0
MAX_BLOCK_MS = 5_000
READ_COUNT = 1_000  # stream entries per XREAD
REDIS_PY_SOCKET_TIMEOUT = 5.0  # redis-py's default when the client names none

# KEYS[1] events stream, KEYS[2] attempt key. ARGV[1] attempt, ARGV[2] entry id `0-<last>`,
# ARGV[3] first event number, ARGV[4] payload, ARGV[5] maxlen, ARGV[6] ttl seconds.
# Replies {1, id} appended; {0, current attempt or ''} fenced; {2, ''} gone (the key is missing
# but events before ARGV[3] were written); {3, error} the id is not above the stream's last one.
# An entry already at ARGV[2] with the same first event and attempt is our own append, retried
# after its reply was lost: it counts as appended.
_APPEND = """
local current = redis.call('GET', KEYS[2])
if current ~= ARGV[1] then return {0, current or ''} end
if tonumber(ARGV[3]) > 1 and redis.call('EXISTS', KEYS[1]) == 0 then return {2, ''} end
local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], ARGV[2],
  'f', ARGV[3], 'a', ARGV[1], 'd', ARGV[4])
if type(added) == 'table' and added.err then
  local same = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
  if #same ~= 1 or same[1][2][2] ~= ARGV[3] or same[1][2][4] ~= ARGV[1] then
    return {3, added.err}
  end
  added = ARGV[2]
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return {1, added}
"""


class Fenced(Exception):
    """The run was taken over: this writer's attempt is no longer the run's, it may not append."""


class RunGone(LookupError):
    """The run's events are not in Redis: they expired, were deleted, or were never written."""


class EventsLost(LookupError):
    """Events a reader still needed were trimmed from the stream (MAXLEN)."""


class LogConflict(Exception):
    """The stream already holds the event numbers this writer was about to use (a stale `start`)."""


def check_client(redis: aioredis.Redis) -> None:
    if redis.connection_pool.connection_kwargs.get("decode_responses"):
        raise ValueError("the Redis event log needs a client with decode_responses=False")


def entry_event_number(entry_id: bytes) -> int:
    """The event number a stream ID `0-<n>` stands for."""
    return int(entry_id.partition(b"-")[2])


async def take_over(
    redis: aioredis.Redis, keys: Keys, run_id: str, *, ttl_seconds: int = DEFAULT_TTL_SECONDS
) -> int:
    """INCR the run's attempt (with EXPIRE, in one MULTI): the new fencing token, 1 for a new run."""
    key = keys.attempt(run_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, ttl_seconds)
        attempt, _ = await pipe.execute()
    return int(attempt)


async def log_tail(redis: aioredis.Redis, key: str) -> tuple[int, bool] | None:
    """(number of the last event, whether it ended) of the log in `key`; None if there is no key."""
    rows: Any = await redis.xrevrange(key, "+", "-", count=1)
    if not rows:
        return None
    entry_id, fields = rows[0]
    return entry_event_number(entry_id), decode_entries(fields[b"d"])[1]


async def last_event_number(redis: aioredis.Redis, keys: Keys, run_id: str) -> int:
    """How many events the run's log holds (0 if none): the `start` of a writer taking over."""
    tail = await log_tail(redis, keys.events(run_id))
    return 0 if tail is None else tail[0]


class RedisEventWriter:
    """The engine's `EventSink` over a Redis stream; `async with` (or `aclose`) flushes at the end."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        run_id: str,
        attempt: int,
        *,
        start: int = 0,
        batch_seconds: float = 0.005,
        maxlen: int = DEFAULT_MAXLEN,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> None:
        check_client(redis)
        if attempt < 1 or start < 0 or batch_seconds < 0 or maxlen < 1 or ttl_seconds < 1:
            raise ValueError("need attempt >= 1, start >= 0, batch_seconds >= 0, maxlen >= 1, ttl >= 1")
        self.redis = redis
        self.run_id = run_id
        self.attempt = attempt
        self.batch_seconds = batch_seconds
        self.maxlen = maxlen
        self.ttl_seconds = ttl_seconds
        self.appends = 0  # stream entries this writer has added
        self._keys = [keys.events(run_id), keys.attempt(run_id)]
        self._script = redis.register_script(_APPEND)
        self._buffer: list[Any] = []  # JSON-ready values (codec.to_value), not yet sent
        self._first_at = 0.0  # loop time the oldest buffered event was emitted
        self._emitted = start  # number of the last event emitted
        self._appended = start  # number of the last event in the stream
        self._urgent = start  # send at once up to this event (End, flush)
        self._last_append_at = -math.inf  # loop time the latest append started
        self._token_sent = False
        self._ended = self._closed = False
        self.failure: BaseException | None = None  # what stopped the writer
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._progress: asyncio.Future[None] | None = None  # resolved by the next append or failure

    @property
    def emitted(self) -> int:
        """The number of the last event emitted (the log's length once all is flushed)."""
        return self._emitted

    @property
    def appended(self) -> int:
        """The number of the last event known to be in the stream."""
        return self._appended

    def emit(self, event: Event) -> None:
        self._check_open()
        value = check_event(event)  # a CodecError here leaves the writer as it was
        self._add()
        self._emitted += 1
        self._buffer.append(value)
        if type(event) is End:
            self._ended = True
            self._send(self._emitted)

    def emit_tokens(self, chunks: Sequence[str]) -> None:
        """A token for each chunk, in order (kept as bare text, as `EventLog` keeps them)."""
        self._check_open()
        if chunks:
            self._add()
            self._emitted += len(chunks)
            self._buffer.extend(chunks)
            if not self._token_sent:
                self._token_sent = True
                self._send(self._emitted)

    async def flush(self) -> None:
        """Return once everything emitted so far is in the stream; the writer's failure otherwise."""
        target = self._emitted
        while True:
            if self.failure is not None:
                raise self.failure
            if self._appended >= target:
                return
            if self._progress is None:
                self._progress = asyncio.get_running_loop().create_future()
            self._send(target)
            await asyncio.shield(self._progress)  # shared: a cancelled flush must not cancel it

    async def aclose(self) -> None:
        """Flush, then accept nothing more (`RuntimeError` on emit). Raises what `flush` raises."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.flush()
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._task is not None and not self._task.done():
                self._task.cancel()  # only when flush failed or was cancelled

    async def __aenter__(self) -> RedisEventWriter:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            await self.aclose()
        except Exception:
            if exc_type is None:
                raise
            logger.warning("run %s: the event log could not be flushed", self.run_id, exc_info=True)

    def _check_open(self) -> None:
        if self.failure is not None:
            raise self.failure
        if self._ended or self._closed:
            raise RuntimeError(f"run {self.run_id}: event after end")

    def _add(self) -> None:
        """Before buffering: start the batch clock, and the flusher unless one is on its way."""
        if self._buffer:
            return
        loop = asyncio.get_running_loop()
        self._first_at = now = loop.time()
        if self._timer is None and self._task is None:
            wait = self._last_append_at + self.batch_seconds - now
            if wait > 0:
                self._timer = loop.call_later(wait, self._start)
            else:  # quiet for a while: at once (the task runs after this emit has buffered its event)
                self._start()

    def _send(self, target: int) -> None:
        """Append up to event `target` without waiting for the batch clock."""
        self._urgent = max(self._urgent, target)
        if self._task is None:
            if self._timer is not None:
                self._timer.cancel()
            self._start()

    def _start(self) -> None:
        self._timer = None
        if self._task is None and self.failure is None:
            self._task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._buffer:
                await self._append()
                if self._buffer and self._urgent <= self._appended:
                    delay = self._first_at + self.batch_seconds - loop.time()
                    if delay > 0:
                        self._timer = loop.call_later(delay, self._start)
                        break
        except asyncio.CancelledError:
            self._fail(RuntimeError(f"run {self.run_id}: the event log writer was closed mid-append"))
            raise
        except Exception as exc:
            self._fail(exc)
        finally:
            self._task = None

    async def _append(self) -> None:
        batch, self._buffer = self._buffer, []
        self._last_append_at = asyncio.get_running_loop().time()
        first, last = self._appended + 1, self._appended + len(batch)
        payload = dumps_values(batch)
        args: list[EncodableT] = [self.attempt, f"0-{last}", first, payload, self.maxlen, self.ttl_seconds]
        code, detail = await self._script(keys=self._keys, args=args)
        if code == 1:
            self._appended = last
            self.appends += 1
            self._wake()
            return
        if code == 0:
            current = detail.decode() or "none"
            raise Fenced(f"run {self.run_id}: attempt {self.attempt} was taken over (now: {current})")
        if code == 2:
            raise RunGone(f"run {self.run_id}: its events are gone; not appending events {first}..{last}")
        raise LogConflict(f"run {self.run_id}: cannot append events {first}..{last}: {detail.decode()}")

    def _fail(self, exc: BaseException) -> None:
        self.failure = self.failure or exc
        self._buffer = []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake()

    def _wake(self) -> None:
        if self._progress is not None:
            self._progress.set_result(None)
            self._progress = None
