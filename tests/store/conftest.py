"""Every store test runs on SQLite and on PostgreSQL.

`database_url` hands each test the URL of an empty database: a fresh SQLite file, or the session's
throwaway PostgreSQL database, emptied again after the test. The PostgreSQL database is created once
per session on a private event loop (tests each run on their own loop) and dropped at the end, also
when tests fail; if no server answers, the PostgreSQL params skip with the reason.

Other test packages can reuse these fixtures by importing them into their own conftest:
`from tests.store.conftest import database_url, postgres_session_database`.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest

from streamwise.store import ChatflowRepository, Database, MessageRepository
from tests.support.pg import PostgresUnavailable, postgres_test_database, reset_database


@dataclass(frozen=True, slots=True)
class PostgresSession:
    url: str
    runner: asyncio.Runner


@pytest.fixture(scope="session")
def postgres_session_database() -> Iterator[PostgresSession]:
    # A loop_factory keeps this runner from replacing the event loop pytest-asyncio set up.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        stack = AsyncExitStack()
        try:
            url = runner.run(stack.enter_async_context(postgres_test_database()))
        except PostgresUnavailable as exc:
            pytest.skip(str(exc))
        try:
            yield PostgresSession(url, runner)
        finally:
            runner.run(stack.aclose())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The plain (sync-style) URL of an empty database; `Database.from_url` picks the async driver."""
    if request.param == "sqlite":
        with tempfile.TemporaryDirectory(prefix="streamwise-store-") as directory:
            yield f"sqlite:///{directory}/streamwise.db"
        return
    postgres: PostgresSession = request.getfixturevalue("postgres_session_database")
    try:
        yield postgres.url
    finally:
        postgres.runner.run(reset_database(postgres.url))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with Database.from_url(database_url) as database:
        await database.migrate()
        yield database


@pytest.fixture
def chatflows(db: Database) -> ChatflowRepository:
    return ChatflowRepository(db)


@pytest.fixture
def messages(db: Database) -> MessageRepository:
    return MessageRepository(db)
