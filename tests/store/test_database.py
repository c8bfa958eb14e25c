from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

import streamwise
from streamwise.store import ChatflowRepository, Database, MessageRepository, to_async_url
from streamwise.store.tables import Base
from tests.store.factories import make_exchange


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///data/streamwise.db", "sqlite+aiosqlite:///data/streamwise.db"),
        ("sqlite+aiosqlite:////abs/streamwise.db", "sqlite+aiosqlite:////abs/streamwise.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
        ("postgres://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("postgresql+psycopg2://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("postgresql://u@db/app?sslmode=require", "postgresql+asyncpg://u@db/app?ssl=require"),
    ],
)
def test_urls_are_rewritten_to_async_drivers(given: str, expected: str) -> None:
    assert to_async_url(given).render_as_string(hide_password=False) == expected


def test_other_backends_are_refused_without_showing_the_password() -> None:
    with pytest.raises(ValueError, match="mysql") as caught:
        to_async_url("mysql://user:secret@db/app")
    assert "secret" not in str(caught.value)


async def test_repr_hides_the_password() -> None:
    db = Database.from_url("postgresql://user:secret@127.0.0.1/app")
    try:
        assert "secret" not in repr(db)
    finally:
        await db.dispose()


def _schema(connection: Connection) -> dict[str, set[str]]:
    inspector = inspect(connection)
    return {
        table: {index["name"] or "" for index in inspector.get_indexes(table)}
        for table in inspector.get_table_names()
    }


async def test_migrate_creates_every_table_and_their_indexes(database_url: str) -> None:
    async with Database.from_url(database_url) as db:
        await db.migrate()
        async with db.engine.connect() as connection:
            schema = await connection.run_sync(_schema)

    assert set(schema) == {
        "alembic_version",
        "apikey",
        "credential",
        "chat_flow",
        "chat_message",
        "chat_message_feedback",
        "run",
        "server_instance",
        "upsert_record",
    }
    # PostgreSQL also lists the unique constraint on messageId as an index.
    assert schema["chat_message_feedback"] - {"uq_chat_message_feedback_messageId"} == {
        "ix_chat_message_feedback_chatflowid",
        "ix_chat_message_feedback_chatId",
    }
    assert schema["upsert_record"] == {"ix_upsert_record_namespace_source"}
    assert schema["apikey"] - {"uq_apikey_lookup"} == set()
    assert schema["chat_message"] == {
        "ix_chat_message_status",
        "ix_chat_message_chatId",
        "ix_chat_message_sessionId",
        "ix_chat_message_createdDate",
        "ix_chat_message_runId",
        "ix_chat_message_chatflowid_sessionId_createdDate",
    }


async def test_migrating_again_is_a_no_op(database_url: str) -> None:
    async with Database.from_url(database_url) as db:
        await db.migrate()
        created = await ChatflowRepository(db).create({"name": "kept", "flowData": "{}"})

        await db.migrate()

        assert await ChatflowRepository(db).get(created.id) == created
        async with db.engine.connect() as connection:
            versions = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert [row[0] for row in versions] == ["0006"]


def _differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_migrations_build_exactly_the_models(database_url: str) -> None:
    async with Database.from_url(database_url) as db:
        await db.migrate()
        async with db.engine.connect() as connection:
            differences = await connection.run_sync(_differences)

    assert differences == []


async def test_sqlite_file_gets_its_directory_wal_and_a_busy_timeout() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "not" / "yet" / "there.db"
        async with Database.from_url(f"sqlite:///{path}") as db, db.engine.connect() as connection:
            journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
            timeout = (await connection.execute(text("PRAGMA busy_timeout"))).scalar_one()

        assert path.exists()
        assert journal == "wal"
        assert timeout >= 5000


async def test_in_memory_sqlite_keeps_data_across_sessions() -> None:
    async with Database.from_url("sqlite+aiosqlite://") as db:
        await db.migrate()
        chatflows = ChatflowRepository(db)
        created = await chatflows.create({"name": "memory", "flowData": "{}"})

        assert await chatflows.get(created.id) == created
        assert db.dialect == "sqlite"


async def test_in_memory_sqlite_takes_concurrent_writers_in_turn() -> None:
    async with Database.from_url("sqlite+aiosqlite://") as db:
        await db.migrate()
        messages = MessageRepository(db)
        exchanges = [make_exchange("flow", f"q{n}", f"a{n}") for n in range(20)]

        await asyncio.gather(*(messages.save_exchange(item) for item in exchanges))

        assert len(await messages.list("flow")) == 40


async def test_a_failed_transaction_leaves_nothing_behind(database_url: str) -> None:
    async with Database.from_url(database_url) as db:
        await db.migrate()
        chatflows = ChatflowRepository(db)
        created = await chatflows.create({"name": "before", "flowData": "{}"})

        with pytest.raises(RuntimeError):
            async with db.transaction() as session:
                await session.execute(text("DELETE FROM chat_flow"))
                raise RuntimeError("changed my mind")

        assert await chatflows.count() == 1
        assert await chatflows.get(created.id) == created


async def test_several_databases_in_one_process_can_migrate_at_once(database_url: str) -> None:
    handles = [Database.from_url(database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(handle.migrate() for handle in handles))
    finally:
        for handle in handles:
            await handle.dispose()


# Where `streamwise` is imported from, so a child process finds the same code, installed or not.
_SOURCE_ROOT = str(Path(streamwise.__file__).resolve().parents[1])

_MIGRATE_IN_A_PROCESS = """
import asyncio, sys
from streamwise.store import Database

async def main() -> None:
    async with Database.from_url(sys.argv[1]) as db:
        await db.migrate()

asyncio.run(main())
"""


async def test_several_processes_can_migrate_at_once(database_url: str) -> None:
    """Server workers start together and each migrates; none may trip over another."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [_SOURCE_ROOT, os.environ.get("PYTHONPATH")])),
    }
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _MIGRATE_IN_A_PROCESS,
            database_url,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    results = [await asyncio.wait_for(process.communicate(), timeout=60) for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0], [
        err.decode()[-2000:] for _, err in results
    ]
    async with Database.from_url(database_url) as db, db.engine.connect() as connection:
        versions = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert [row[0] for row in versions] == ["0006"]
