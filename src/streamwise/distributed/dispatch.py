"""The job queue: API nodes submit runs; workers take, lease, renew and acknowledge them.

One Redis stream (`Keys.jobs`), one consumer group. An entry is a run waiting or being run:
acknowledging also deletes it (XACK + XDEL), so nothing finished stays pending or stored. The group
is created at id 0, so one lost with a Redis restart is re-created over the entries still there,
all unfinished, and hands them out again. `MAXLEN ~ max_length` on XADD is the last bound on
memory; trimming drops the oldest entries, here the ones being run, so API nodes should refuse work
well before `length()` gets there.

A `Consumer` holds `slots` jobs at most: `take` asks XREADGROUP for no more than it has free and
`reclaim` claims no more. A lease is the entry's place in the group's pending entries list (PEL),
its age the entry's idle time. The owner renews every `renew_every` seconds (XCLAIM JUSTID on its
own entry: idle time back to 0, no delivery counted). An entry idle past the lease belongs to a
worker that died or stalled; `reclaim` takes it over (XAUTOCLAIM, which counts a delivery, so
`Job.deliveries` lets the caller fail a run past its retry limit).

A stalled worker that wakes up must not undo a take-over: `renew`, `ack` and `release` are Lua
scripts that first check, atomically, that the entry is still pending under this consumer, and
return False when it is not (the caller stops the run; the run's attempt token fences its writes).
`aclose` hands back whatever is still pending under it (also entries a cancelled XREADGROUP
delivered unseen) by setting their idle time past any lease, and deletes the consumer only when
nothing is pending under it, since XGROUP DELCONSUMER drops a consumer's pending entries. Consumers
left behind (crashed workers, work handed back) are deleted by a later `reclaim` once nothing is
pending under them and they have been idle for `forget_idle_ms`.

BLOCK is capped at half the client's socket timeout, or the blocked read would fail as a timeout;
`take` may return early with nothing, as it may anyway. Needs Redis 7.0 or later.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from uuid import uuid4

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from streamwise.distributed.keys import Keys

logger = logging.getLogger(__name__)

MAX_LENGTH = 100_000
MAX_BLOCK_MS = 5_000
# The idle time a handed-back entry gets: past any lease, so the next reclaim takes it.
_RELEASED_IDLE_MS = 10**10
_REDIS_PY_SOCKET_TIMEOUT = 5.0  # redis-py's default when the client names none

# Reset the idle time of our own entry (ARGV[4] = 0: renew; large: hand back), if it is still ours.
_TOUCH = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) == 0 then return 0 end
return #redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4], 'JUSTID')
"""
_ACK = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) == 0 then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
"""
# Claim up to ARGV[4] entries idle for ARGV[3] ms or more; each with its delivery count.
_RECLAIM = """
local want, cursor, jobs, rounds = tonumber(ARGV[4]), '0-0', {}, 0
repeat
  local reply = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], cursor, 'COUNT', want - #jobs)
  cursor = reply[1]
  for _, entry in ipairs(reply[2]) do
    if entry then
      local p = redis.call('XPENDING', KEYS[1], ARGV[1], entry[1], entry[1], 1, ARGV[2])
      if #p == 1 then table.insert(jobs, {entry[1], entry[2], p[1][4]}) end
    end
  end
  rounds = rounds + 1
until cursor == '0-0' or #jobs >= want or rounds >= 100
return jobs
"""
# Hand back everything the consumer holds; delete the consumer if it held nothing.
_LEAVE = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 100000, ARGV[2])
for _, p in ipairs(pending) do
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, p[1], 'IDLE', ARGV[3], 'JUSTID')
end
if #pending == 0 then redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) end
return #pending
"""
# Delete other consumers with nothing pending, idle for ARGV[3] ms or more.
_PRUNE = """
local n = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['pending'] == 0 and f['idle'] >= tonumber(ARGV[3]) and f['name'] ~= ARGV[2] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    n = n + 1
  end
end
return n
"""


def consumer_name(role: str = "worker") -> str:
    """A consumer name no other process uses: host, pid and a random part."""
    return f"{role}-{socket.gethostname()}-{os.getpid()}-{uuid4().hex[:8]}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _nogroup(exc: ResponseError) -> bool:
    return "NOGROUP" in str(exc)


@dataclass(frozen=True)
class Job:
    entry_id: str
    run_id: str
    payload: bytes
    deliveries: int


class JobQueue:
    def __init__(
        self, redis: aioredis.Redis, keys: Keys, *, group: str = "workers", max_length: int = MAX_LENGTH
    ) -> None:
        if redis.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("JobQueue needs a client with decode_responses=False (payloads are bytes)")
        if max_length < 1:
            raise ValueError("max_length must be at least 1")
        self.redis = redis
        self.keys = keys
        self.group = group
        self.max_length = max_length
        self._touch = redis.register_script(_TOUCH)
        self._ack = redis.register_script(_ACK)
        self._reclaim = redis.register_script(_RECLAIM)
        self._leave = redis.register_script(_LEAVE)
        self._prune = redis.register_script(_PRUNE)

    async def ensure_group(self) -> None:
        """XGROUP CREATE <jobs> <group> 0 MKSTREAM; an existing group is left as it is."""
        try:
            await self.redis.xgroup_create(self.keys.jobs, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    async def submit(self, run_id: str, payload: bytes) -> str:
        """XADD <jobs> MAXLEN ~ <max_length> * run <run_id> payload <payload>; returns the entry id."""
        if not run_id:
            raise ValueError("run_id must not be empty")
        entry_id = await self.redis.xadd(
            self.keys.jobs, {"run": run_id, "payload": payload}, maxlen=self.max_length, approximate=True
        )
        return _text(entry_id)

    async def length(self) -> int:
        """XLEN: entries waiting or being run (the backlog an API node checks before submitting)."""
        return await self.redis.xlen(self.keys.jobs)

    def consumer(
        self, name: str, *, slots: int, lease_ms: int, block_ms: int = 2_000, forget_idle_ms: int = 600_000
    ) -> Consumer:
        return Consumer(
            self, name, slots=slots, lease_ms=lease_ms, block_ms=block_ms, forget_idle_ms=forget_idle_ms
        )


class Consumer:
    """One worker's reader; `async with queue.consumer(name, ...) as consumer:` releases it."""

    def __init__(
        self,
        queue: JobQueue,
        name: str,
        *,
        slots: int,
        lease_ms: int,
        block_ms: int = 2_000,
        forget_idle_ms: int = 600_000,
    ) -> None:
        if not name:
            raise ValueError("a consumer needs a name")
        if slots < 1 or lease_ms < 1 or forget_idle_ms < 1:
            raise ValueError("slots, lease_ms and forget_idle_ms must be at least 1")
        if not 1 <= block_ms <= MAX_BLOCK_MS:
            raise ValueError(f"block_ms must be between 1 and {MAX_BLOCK_MS}")
        options = queue.redis.connection_pool.connection_kwargs
        timeout = options.get("socket_timeout", _REDIS_PY_SOCKET_TIMEOUT)
        if timeout is not None:
            block_ms = max(1, min(block_ms, int(timeout * 500)))
        self.queue = queue
        self.name = name
        self.slots = slots
        self.lease_ms = lease_ms
        self.block_ms = block_ms
        self.forget_idle_ms = forget_idle_ms
        self._held: dict[str, Job] = {}
        self._closed = False

    @property
    def held(self) -> int:
        """Jobs taken or reclaimed and not yet acknowledged, handed back or lost."""
        return len(self._held)

    @property
    def free_slots(self) -> int:
        return self.slots - len(self._held)

    @property
    def renew_every(self) -> float:
        """Seconds between renewals that keep a lease well clear of expiring."""
        return self.lease_ms / 3000

    async def __aenter__(self) -> Consumer:
        await self.queue.ensure_group()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.aclose()
        except Exception:
            if exc is None:
                raise
            logger.warning("consumer %s could not leave the group", self.name, exc_info=True)

    async def take(self, free_slots: int) -> list[Job]:
        """XREADGROUP GROUP <group> <name> COUNT n BLOCK <block_ms> STREAMS <jobs> >.

        n is `free_slots`, capped at the consumer's own free slots; with none free it returns [] at
        once (wait for a run to finish first). New entries only, so every job has deliveries == 1.
        """
        self._check_open()
        count = min(free_slots, self.free_slots)
        if count <= 0:
            return []
        queue = self.queue
        streams: dict[Any, Any] = {queue.keys.jobs: ">"}
        try:
            reply: Any = await queue.redis.xreadgroup(
                queue.group, self.name, streams, count=count, block=self.block_ms
            )
        except ResponseError as exc:
            if not _nogroup(exc):
                raise
            await queue.ensure_group()
            return []
        # RESP2: [[stream, [(id, fields), ...]]]; RESP3: {stream: [[(id, fields), ...]]}.
        if isinstance(reply, dict):
            batches = [batch for value in reply.values() for batch in value]
        else:
            batches = [batch for _, batch in reply]
        jobs: list[Job] = []
        for batch in batches:
            for entry_id, fields in batch:
                job = await self._job(entry_id, fields, 1)
                if job is not None:
                    jobs.append(job)
        return jobs

    async def reclaim(self, min_idle_ms: int | None = None) -> list[Job]:
        """Take over entries idle for `min_idle_ms` (default: the lease), up to the free slots.

        XAUTOCLAIM (looping over the PEL) and XPENDING for each claimed entry's delivery count, in
        one script; then consumers with nothing pending idle past `forget_idle_ms` are deleted
        (XINFO CONSUMERS, XGROUP DELCONSUMER). Entries this consumer already holds are not returned.
        """
        self._check_open()
        if self.free_slots <= 0:
            return []
        idle = self.lease_ms if min_idle_ms is None else min_idle_ms
        rows = await self._call(self.queue._reclaim, idle, self.free_slots)
        if rows is None or await self._call(self.queue._prune, self.forget_idle_ms) is None:
            await self.queue.ensure_group()
            return []
        jobs: list[Job] = []
        for entry_id, fields, deliveries in rows:
            if _text(entry_id) in self._held:
                continue  # our own lease had run out: the claim renewed it
            flat = list(fields)
            job = await self._job(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)), int(deliveries))
            if job is not None:
                jobs.append(job)
        return jobs

    async def renew(self, job: Job) -> bool:
        """XCLAIM <jobs> <group> <name> 0 <id> IDLE 0 JUSTID, if the entry is still pending under us.

        False: the lease is lost (reclaimed by another consumer, or gone); stop the run.
        """
        return await self._touch_own(job, 0)

    async def release(self, job: Job) -> bool:
        """Hand a job back unfinished: its idle time is set past any lease, so the next reclaim gets it."""
        return await self._touch_own(job, _RELEASED_IDLE_MS)

    async def ack(self, job: Job) -> bool:
        """XACK + XDEL, if the entry is still pending under us; False if another consumer owns it now."""
        try:
            return bool(await self._call(self.queue._ack, job.entry_id))
        finally:  # only now: until Redis has it, the entry still counts against our slots
            self._held.pop(job.entry_id, None)

    def forget(self, job: Job) -> None:
        """Stop counting a job this consumer can no longer run or reach (Redis failed under it): its
        slot is free, and once its lease runs out `reclaim` takes it over like any other."""
        self._held.pop(job.entry_id, None)

    async def aclose(self) -> None:
        """Hand back what is still held, then XGROUP DELCONSUMER if nothing is pending under us."""
        if self._closed:
            return
        self._closed = True
        self._held.clear()
        await self._call(self.queue._leave, _RELEASED_IDLE_MS)

    async def _call(self, script: AsyncScript, *args: str | int) -> Any:
        """Run one of the queue's scripts on this consumer; None when the group is gone (NOGROUP)."""
        queue = self.queue
        try:
            return await script(keys=[queue.keys.jobs], args=[queue.group, self.name, *args])
        except ResponseError as exc:
            if not _nogroup(exc):
                raise
            return None

    async def _touch_own(self, job: Job, idle_ms: int) -> bool:
        ok = await self._call(self.queue._touch, job.entry_id, idle_ms)
        if not ok or idle_ms:
            self._held.pop(job.entry_id, None)
        return bool(ok)

    async def _job(self, entry_id: bytes | str, fields: dict[Any, Any], deliveries: int) -> Job | None:
        run_id, payload = fields.get(b"run"), fields.get(b"payload")
        entry = _text(entry_id)
        if not isinstance(run_id, bytes) or not isinstance(payload, bytes):
            logger.error("dropping malformed job entry %s (fields %s)", entry, sorted(map(repr, fields)))
            await self._call(self.queue._ack, entry)
            return None
        job = Job(entry_id=entry, run_id=run_id.decode(), payload=payload, deliveries=deliveries)
        self._held[entry] = job
        return job

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"consumer {self.name} is closed")
