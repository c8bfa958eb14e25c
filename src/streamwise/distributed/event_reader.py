"""Reading a run's event log from Redis (written by `streamwise.distributed.eventlog`, whose
docstring gives the layout) from any event number on.

Reading. `read` is one XREAD BLOCK of at most 5 s and at most half the client's socket timeout (a
longer block would fail as a socket timeout); `batches` loops over it like `EventLog.batches`. A
reader starts at event 0 unless told otherwise, never at `$`, so it misses nothing written before.

Gone runs. Before its first XREAD and after any that found nothing, a reader reads the stream's
last entry (XREVRANGE + - COUNT 1): whether the key exists, and whether the log ended at or before
its cursor (then `read` returns at once, ended). A missing key raises `RunGone` at once if the
reader saw the key before or reads after k > 0 (the events expired or were deleted); at 0 the run
may just not have started (queued), so `RunGone` comes once the key has been missing for
`missing_seconds`. A log that exists but never ends (a dead worker) is not gone: leases or the run
status decide that, and once the TTL removes the key readers get `RunGone`. Events trimmed by
MAXLEN before a reader got them raise `EventsLost`.

Failures propagate as redis-py raises them (see `streamwise.distributed.eventlog`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

from streamwise.distributed.codec import CodecError, Entry, decode_entries
from streamwise.distributed.eventlog import (
    DEFAULT_MISSING_SECONDS,
    MAX_BLOCK_MS,
    READ_COUNT,
    REDIS_PY_SOCKET_TIMEOUT,
    EventsLost,
    RunGone,
    check_client,
    entry_event_number,
    log_tail,
)
from streamwise.distributed.keys import Keys


class RedisEventReader:
    """Reads one run's log from any event number on; see the module docstring for `RunGone`."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        run_id: str,
        *,
        missing_seconds: float = DEFAULT_MISSING_SECONDS,
    ) -> None:
        check_client(redis)
        if missing_seconds < 0:
            raise ValueError("missing_seconds must be >= 0")
        self.redis = redis
        self.run_id = run_id
        self.missing_seconds = missing_seconds
        self.cursor = 0  # where `batches` has got to
        self._key = keys.events(run_id)
        timeout = redis.connection_pool.connection_kwargs.get("socket_timeout", REDIS_PY_SOCKET_TIMEOUT)
        cap = MAX_BLOCK_MS if timeout is None else int(timeout * 500)  # a block must end before the timeout
        self._max_block_ms = max(1, min(MAX_BLOCK_MS, cap))
        self._look = True  # look at the tail before the next XREAD
        self._existed = False  # the key has been seen
        self._missing_since: float | None = None
        self._end: int | None = None  # the number of the log's End, once seen

    async def read(self, after: int, *, block_seconds: float) -> tuple[list[Entry], int, bool]:
        """(entries after event `after`, the new cursor, whether `End` was read); ([], after, False)
        when nothing came within `block_seconds` (clamped to 5 s; 0 does not block)."""
        if after < 0:
            raise ValueError("after must be >= 0")
        block_ms = 0 if block_seconds <= 0 else max(1, min(self._max_block_ms, int(block_seconds * 1000)))
        if self._end is not None and after >= self._end:
            return [], after, True  # the log ended at or before `after`
        if self._look:
            tail = await log_tail(self.redis, self._key)
            if tail is None:
                remaining = self._missing(after)
                block_ms = min(block_ms, max(1, int(remaining * 1000)))
            else:
                self._look, self._existed, self._missing_since = False, True, None
                if tail[1]:
                    self._end = tail[0]
                    if tail[0] <= after:
                        return [], after, True
        streams: dict[Any, Any] = {self._key: f"0-{after}"}
        reply: Any = await self.redis.xread(streams, count=READ_COUNT, block=block_ms or None)
        entries, cursor, ended = self._parse(reply, after)
        if cursor == after and not ended:
            self._look = True
        else:
            self._look, self._existed, self._missing_since = False, True, None
        return entries, cursor, ended

    async def batches(self, after: int = 0, idle: float | None = None) -> AsyncIterator[list[Entry]]:
        """Yield lists of entries after event `after` until `End` has been yielded.

        With `idle` set, an empty list is yielded after that many seconds of silence (heartbeats).
        """
        loop = asyncio.get_running_loop()
        self.cursor = after
        quiet_since = loop.time()
        while True:
            wait = MAX_BLOCK_MS / 1000 if idle is None else max(0.001, quiet_since + idle - loop.time())
            entries, self.cursor, ended = await self.read(self.cursor, block_seconds=wait)
            if entries:
                yield entries
                quiet_since = loop.time()
            elif idle is not None and loop.time() - quiet_since >= idle:
                yield []
                quiet_since = loop.time()
            if ended:
                return

    def _missing(self, after: int) -> float:
        """The key is not there: `RunGone`, or the seconds it may stay missing."""
        self._existed, was_there = False, self._existed
        if was_there or after > 0:
            raise RunGone(f"run {self.run_id}: its events expired or were deleted")
        now = asyncio.get_running_loop().time()
        if self._missing_since is None:
            self._missing_since = now
        remaining = self._missing_since + self.missing_seconds - now
        if remaining <= 0:
            raise RunGone(f"run {self.run_id}: no events were written within {self.missing_seconds:g} s")
        return remaining

    def _parse(self, reply: Any, after: int) -> tuple[list[Entry], int, bool]:
        if not reply:
            return [], after, False
        # RESP2: [[stream, [(id, fields), ...]]]; RESP3: {stream: [[(id, fields), ...]]}.
        if isinstance(reply, dict):
            rows = [row for value in reply.values() for batch in value for row in batch]
        else:
            rows = [row for _, batch in reply for row in batch]
        out: list[Entry] = []
        cursor = after
        for entry_id, fields in rows:
            first, last = int(fields[b"f"]), entry_event_number(entry_id)
            batch, ended = decode_entries(fields[b"d"])
            if len(batch) != last - first + 1:
                raise CodecError(f"run {self.run_id}: entry {entry_id.decode()} holds {len(batch)} events")
            if first > cursor + 1:
                raise EventsLost(f"run {self.run_id}: events {cursor + 1}..{first - 1} were trimmed")
            out.extend(batch[cursor + 1 - first :] if first <= cursor else batch)
            cursor = last
            if ended:
                self._end = cursor
                return out, cursor, True
        return out, cursor, False
