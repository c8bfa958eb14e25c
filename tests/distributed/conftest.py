"""Clients of the shared Redis with key prefixes of the tests' own (their keys removed afterwards), and
a redis-server of a test's own for tests that kill or restart it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

import pytest
import redis.asyncio as aioredis

from streamwise.distributed.keys import Keys
from tests.support.own_redis import OwnRedis
from tests.support.pg import PostgresUnavailable, postgres_test_database_sync
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


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    """A redis-server of the test's own (see tests/support/own_redis.py), killed afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: this test starts one of its own")
    server = OwnRedis(binary, tmp_path)
    yield server
    await server.kill()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of the module's own (the deployments' shared truth), dropped afterwards;
    the tests skip if no PostgreSQL answers."""
    try:
        with postgres_test_database_sync() as url:
            yield url
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
