"""A worker beginning an attempt at a run: everything it must know from Redis, in one round trip.

`begin_attempt` is one Lua script, so nothing changes between its steps:

1. the log's last entry; on a job's first delivery, a log that already has events means the job was
   submitted twice (a retried XADD) and the script stops there (`None`): taking it over would fence
   the attempt that is running it;
2. INCR of the run's attempt key with its TTL: the new fencing token (`take_over`'s, 1 for a new
   run); after it no older attempt can append;
3. the cancel marker.

It answers where the new attempt starts (the number of the last event in the log), whether the log
already ended (only the job's acknowledgement was lost), and the cancel reason if there is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from streamwise.distributed.codec import decode_entries
from streamwise.distributed.eventlog import entry_event_number
from streamwise.distributed.keys import Keys

# KEYS[1] events stream, KEYS[2] attempt key, KEYS[3] cancel marker. ARGV[1] '1' on a job's first
# delivery, ARGV[2] the attempt key's TTL in seconds. Replies {0} for a job submitted twice, else
# {1, attempt, last entry id or '', its `d` field or '', cancel reason or ''}.
_BEGIN = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if ARGV[1] == '1' and #last > 0 then return {0} end
local attempt = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local cancel = redis.call('GET', KEYS[3]) or ''
if #last == 0 then return {1, attempt, '', '', cancel} end
local fields, data = last[1][2], ''
for i = 1, #fields, 2 do
  if fields[i] == 'd' then data = fields[i + 1] end
end
return {1, attempt, last[1][1], data, cancel}
"""


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int  # the fencing token
    start: int  # the number of the last event already in the log (0 for a new run)
    ended: bool  # the log already holds `end`
    cancelled: str | None  # the cancel marker's reason


async def begin_attempt(
    redis: aioredis.Redis, keys: Keys, run_id: str, *, first_delivery: bool, ttl_seconds: int
) -> Attempt | None:
    """Begin an attempt at the run (see the module docstring); None for a job submitted twice."""
    reply: Any = await redis.eval(
        _BEGIN,
        3,
        keys.events(run_id),
        keys.attempt(run_id),
        keys.cancel(run_id),
        "1" if first_delivery else "0",
        ttl_seconds,
    )
    if reply[0] == 0:
        return None
    _, number, entry_id, data, cancel = reply
    start = entry_event_number(entry_id) if entry_id else 0
    ended = bool(data) and decode_entries(data)[1]
    return Attempt(int(number), start, ended, cancel.decode() if cancel else None)
