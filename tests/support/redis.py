"""The machine's shared Redis, for tests that need a real one: every test uses keys of its own
(a unique prefix) and removes exactly those, never anything else."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

REDIS_URL = "redis://127.0.0.1:6379/0"


async def keys_matching(pattern: str) -> list[bytes]:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        async with asyncio.timeout(10):
            return [key async for key in client.scan_iter(match=pattern, count=1000)]
    finally:
        await client.aclose()


async def delete_matching(pattern: str) -> None:
    """Delete every key matching `pattern`, and check that none is left."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        async with asyncio.timeout(10):
            found = [key async for key in client.scan_iter(match=pattern, count=1000)]
            if found:
                await client.delete(*found)
            assert [key async for key in client.scan_iter(match=pattern)] == []
    finally:
        await client.aclose()
