"""A client of the shared Redis and a key prefix of the test's own, its keys removed afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
import redis.asyncio as aioredis

from streamwise.distributed.keys import Keys
from tests.support.redis import REDIS_URL, delete_matching


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
async def keys() -> AsyncIterator[Keys]:
    keys = Keys(prefix=f"test-{uuid4()}")
    yield keys
    await delete_matching(keys.pattern())
