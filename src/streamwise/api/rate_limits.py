"""Rate limits and concurrent-stream slots: the building blocks the prediction routes use.

- `chatflow_rate_limit` reads a chatflow's `apiConfig.rateLimit` as Flowise's UI stores it
  (`{"status": true, "limitMax": "5", "limitDuration": "60", "limitMsg": "..."}`: the numbers are
  usually the strings of a number input, sometimes numbers). As in Flowise, only `status: false`
  turns the limit off; a config without `status` (what Flowise's UI saved before it had the switch)
  is enforced when its numbers are there. A fractional `limitMax` is rounded down (Flowise lets
  `totalHits <= max` pass), a fractional `limitDuration` up (windows are whole seconds). Anything
  unusable falls back to the server's default, so a bad config never fails a prediction. A limit is
  held to at most 100,000 requests and a window to at most a day.
- `RateLimiter` counts requests per (bucket, who) with `limits`, in this process (`memory://`) or
  in Redis shared by every server process (`redis://`, `rediss://`, `redis+unix://`, through
  redis-py). It uses the moving-window strategy: the store checks the last `max` timestamps and
  records the new one in one atomic step (a lock in memory, a Lua script in Redis), so however many
  requests race, exactly `max` pass in any `seconds`-long span, and Retry-After is the time until
  the oldest counted request ages out. A fixed window is atomic too, but lets up to twice `max`
  through around a window boundary. The cost is up to `max` timestamps per (bucket, who), taken
  from each server's clock (keep them in sync when several share a Redis).
- `StreamSlots` caps the streams one client has open at once, in this process.
- `client_address` names the client behind trusted proxies with the right-to-left
  `X-Forwarded-For` rule, so a client cannot pick its own address by sending the header.

A store that fails or does not answer lets the request through (fail-open): a rate limit protects
capacity, and refusing every prediction because Redis is down would be the larger outage. Every
call is bounded (2 s to connect or read, one retry, 3 s in all); after a failure the store is not
asked again for 5 s, so requests do not each wait for a dead server, and a warning is logged at
most once a minute.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

logger = logging.getLogger(__name__)

DEFAULT_LIMIT_MESSAGE = "Too many requests, please try again later."
# What a chatflow's limit is held to (more would keep that many timestamps per client in memory).
MAX_LIMIT = 100_000
MAX_WINDOW_SECONDS = 86_400
_SOCKET_TIMEOUT = 2.0
_CALL_TIMEOUT = 3.0
_PAUSE_AFTER_FAILURE = 5.0
_WARN_EVERY = 60.0
# What a number input can hold, as JavaScript's Number() reads it (no "1_000", "nan", "0x10").
_NUMBER = re.compile(r"\s*\+?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class RateLimit:
    """At most `max` requests in any `seconds`-long span; refused requests get `message`."""

    max: int
    seconds: int
    message: str = DEFAULT_LIMIT_MESSAGE

    def __post_init__(self) -> None:
        if self.max < 1 or self.seconds < 1:
            raise ValueError(f"a rate limit needs max >= 1 and seconds >= 1, not {self.max}/{self.seconds}")


def chatflow_rate_limit(api_config: str | None, default: RateLimit | None) -> RateLimit | None:
    """The limit a chatflow's stored `apiConfig` text sets, else `default`; never raises."""
    if not api_config:
        return default
    own = _parse_api_config(api_config)
    return default if own is None else own


@lru_cache(maxsize=512)
def _parse_api_config(text: str) -> RateLimit | None:
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        return None
    rate_limit = config.get("rateLimit") if isinstance(config, dict) else None
    if not isinstance(rate_limit, dict):
        return None
    status = rate_limit.get("status")
    if status is not None and status is not True:
        return None
    max_value = _positive_number(rate_limit.get("limitMax"))
    seconds_value = _positive_number(rate_limit.get("limitDuration"))
    if max_value is None or seconds_value is None or max_value < 1:
        return None
    message = rate_limit.get("limitMsg")
    if not isinstance(message, str) or not message.strip():
        message = DEFAULT_LIMIT_MESSAGE
    # Bounded: a moving window keeps one timestamp per counted request, for the whole window.
    return RateLimit(
        max=min(math.floor(max_value), MAX_LIMIT),
        seconds=min(math.ceil(seconds_value), MAX_WINDOW_SECONDS),
        message=message,
    )


def _positive_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not _NUMBER.fullmatch(value):
            return None
        value = float(value)
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


class RateLimiter:
    """Moving-window request counts per (bucket, who), in memory or in Redis."""

    def __init__(self, storage_uri: str, prefix: str = "streamwise") -> None:
        scheme, _, rest = storage_uri.partition("://")
        scheme = scheme.lower()
        self._pool: ConnectionPool | None = None
        self._memory: MemoryStorage | None = None
        storage: Storage
        if scheme == "memory":
            storage = self._memory = MemoryStorage()
        elif scheme in ("redis", "rediss", "redis+unix"):
            client_url = f"{'unix' if scheme == 'redis+unix' else scheme}://{rest}"
            self._pool = ConnectionPool.from_url(
                client_url,
                socket_connect_timeout=_SOCKET_TIMEOUT,
                socket_timeout=_SOCKET_TIMEOUT,
                retry=Retry(NoBackoff(), 1),
            )
            # limits types its pass-through options as scalars; redis-py takes the pool as is.
            options: dict[str, Any] = {"connection_pool": self._pool}
            storage = RedisStorage(
                f"async+{scheme}://{rest}",
                wrap_exceptions=True,
                implementation="redispy",
                key_prefix=prefix,
                **options,
            )
        else:
            raise ValueError(f"rate-limit storage must be memory:// or a redis:// URL, not {scheme}://")
        self._storage = storage
        self.kind = "memory" if scheme == "memory" else "redis"
        self._strategy = MovingWindowRateLimiter(storage)
        parts = urlsplit(f"{scheme}://{rest}")
        self._where = f"{scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
        self._paused_until = 0.0
        self._warned_at = -math.inf

    async def hit(self, bucket: str, who: str, limit: RateLimit) -> float | None:
        """Count one request; None when it may pass, else the whole seconds until one may."""
        if time.monotonic() < self._paused_until:
            return None
        item = _item(limit.max, limit.seconds)
        # Quoted so that no bucket or client name can contain the key's "/" separator.
        identifiers = (quote(bucket, safe=":."), quote(who, safe=":."))
        try:
            async with asyncio.timeout(_CALL_TIMEOUT):
                if await self._strategy.hit(item, *identifiers):
                    return None
        except Exception as exc:  # fail-open: see the module docstring
            self._failed(exc)
            return None
        try:
            async with asyncio.timeout(_CALL_TIMEOUT):
                stats = await self._strategy.get_window_stats(item, *identifiers)
        except Exception as exc:
            self._failed(exc)
            return float(limit.seconds)
        wait = math.ceil(stats.reset_time - time.time())
        return float(min(max(wait, 1), limit.seconds))

    async def healthy(self) -> bool:
        """Whether the store answers (within the call deadline)."""
        try:
            async with asyncio.timeout(_CALL_TIMEOUT):
                return bool(await self._storage.check())
        except Exception:
            return False

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._paused_until = now + _PAUSE_AFTER_FAILURE
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            logger.warning(
                "rate-limit store %s failed (%s: %s); letting requests through unlimited",
                self._where,
                type(exc).__name__,
                exc,
            )

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
        # The memory store leaves a task behind that expires old entries.
        timer = self._memory.timer if self._memory is not None else None
        if timer is not None and not timer.done():
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)


@lru_cache(maxsize=256)
def _item(max_requests: int, seconds: int) -> RateLimitItemPerSecond:
    return RateLimitItemPerSecond(max_requests, seconds)


class StreamSlots:
    """How many streams each client has open in this process; `max_per_client` 0 is unlimited.

    Used from one event loop only, so the counts need no lock.
    """

    def __init__(self, max_per_client: int) -> None:
        if max_per_client < 0:
            raise ValueError("max_per_client must be >= 0")
        self.max_per_client = max_per_client
        self._open: dict[str, int] = {}

    def acquire(self, who: str) -> bool:
        count = self._open.get(who, 0)
        if self.max_per_client and count >= self.max_per_client:
            return False
        self._open[who] = count + 1
        return True

    def release(self, who: str) -> None:
        count = self._open.get(who, 0)
        if count > 1:
            self._open[who] = count - 1
        else:
            self._open.pop(who, None)

    def open_streams(self, who: str) -> int:
        return self._open.get(who, 0)

    def __len__(self) -> int:
        """The number of clients with a stream open."""
        return len(self._open)


class TrustedProxies:
    """Addresses and networks (`10.0.0.0/8`, `::1`) of the proxies whose X-Forwarded-For counts.

    Parsed once, at startup: raises ValueError for an entry that is neither.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks = tuple(
            ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()
        )

    def __contains__(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def client_address(self, scope_client_host: str | None, forwarded_for: str | None) -> str:
        """The client's address: the peer's, or, when the peer is a trusted proxy, the first address
        in X-Forwarded-For (several headers joined with ",") that is not a trusted proxy, read from
        the right. A malformed entry ends the walk at the last good hop: what is left of it is
        unknown. Addresses come back normalised (`2001:db8::1`, IPv4-mapped ones as IPv4).
        """
        if not scope_client_host:
            return "unknown"
        peer = _ip(scope_client_host)
        if peer is None:
            return scope_client_host
        if not forwarded_for or peer not in self:
            return str(peer)
        hop = peer
        for entry in reversed(forwarded_for.split(",")):
            address = _ip(entry)
            if address is None:
                break
            hop = address
            if hop not in self:
                break
        return str(hop)


@lru_cache(maxsize=16)
def _trusted(entries: tuple[str, ...]) -> TrustedProxies:
    return TrustedProxies(entries)


def _ip(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; count them as the IPv4 address.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(
    scope_client_host: str | None,
    forwarded_for: str | None,
    trusted_proxies: Sequence[str] | TrustedProxies,
) -> str:
    """`TrustedProxies.client_address`, with the list parsed once per distinct list."""
    if not isinstance(trusted_proxies, TrustedProxies):
        trusted_proxies = _trusted(tuple(trusted_proxies))
    return trusted_proxies.client_address(scope_client_host, forwarded_for)
