"""Throwaway PostgreSQL databases for tests.

`postgres_test_database()` creates a uniquely named database on the local server and drops it when
the block ends, however it ends; `postgres_test_database_sync()` is the same for synchronous code
(module fixtures, and code inside Playwright's sync API, which runs an event loop of its own).
Point it elsewhere with `STREAMWISE_TEST_POSTGRES`, an admin URL such as
`postgresql://postgres@127.0.0.1:5432/test`; by default it tries the users `postgres` and `root` on
the `test` and `postgres` databases at 127.0.0.1:5432.

It talks to the server through SQLAlchemy's asyncpg dialect (in AUTOCOMMIT, as CREATE/DROP DATABASE
require), which keeps this module fully typed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

HOST = "127.0.0.1"
PORT = 5432
CONNECT_TIMEOUT_S = 5.0
DATABASE_PREFIX = "streamwise_test_"


class PostgresUnavailable(Exception):
    """No PostgreSQL server answered; tests that need one should skip with this message."""


def _admin_candidates() -> list[URL]:
    configured = os.environ.get("STREAMWISE_TEST_POSTGRES")
    if configured:
        return [make_url(configured)]
    return [
        URL.create("postgresql", username=user, host=HOST, port=PORT, database=database)
        for user in ("postgres", "root")
        for database in ("test", "postgres")
    ]


@asynccontextmanager
async def _autocommit(url: URL) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(
        url.set(drivername="postgresql+asyncpg"),
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"timeout": CONNECT_TIMEOUT_S},
    )
    try:
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()


async def _find_admin_url() -> URL:
    failures: list[str] = []
    for url in _admin_candidates():
        try:
            async with _autocommit(url) as connection:
                await connection.execute(text("SELECT 1"))
            return url
        except (OSError, TimeoutError, OperationalError, DBAPIError) as exc:
            failures.append(f"{url.username}@{url.database}: {exc.__class__.__name__}: {exc}".splitlines()[0])
    where = ", ".join(sorted({f"{url.host}:{url.port or PORT}" for url in _admin_candidates()}))
    raise PostgresUnavailable(f"PostgreSQL unreachable at {where}: {'; '.join(failures)}")


async def reset_database(url: str | URL) -> None:
    """Empty a test database completely (tables, indexes, alembic's version), leaving it usable.

    Connections a test forgot to close are terminated first, so they cannot block the drop.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    async with _autocommit(parsed) as connection:
        await connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))


@asynccontextmanager
async def postgres_test_database() -> AsyncIterator[str]:
    """Yield the plain `postgresql://` URL of a new, empty database, dropped afterwards.

    Raises `PostgresUnavailable` when no server answers.
    """
    admin_url = await _find_admin_url()
    name = f"{DATABASE_PREFIX}{secrets.token_hex(6)}"
    async with _autocommit(admin_url) as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    finally:
        async with _autocommit(admin_url) as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def postgres_test_database_sync() -> Iterator[str]:
    """`postgres_test_database()` for synchronous code: the database is made and dropped on an event
    loop of its own, on a thread of its own, so a loop already running here is no obstacle."""
    with ThreadPoolExecutor(1, thread_name_prefix="test-postgres") as thread:
        runner = asyncio.Runner()
        stack = AsyncExitStack()
        try:
            url = thread.submit(runner.run, stack.enter_async_context(postgres_test_database())).result()
            try:
                yield url
            finally:
                thread.submit(runner.run, stack.aclose()).result()
        finally:
            thread.submit(runner.close).result()
