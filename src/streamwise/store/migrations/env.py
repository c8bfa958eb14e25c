"""Alembic's entry point for Streamwise's schema.

`Database.migrate()` hands its own connection over in `config.attributes["connection"]`, already
inside the async engine's `run_sync`, so nothing here touches the event loop. Run from the alembic
command line instead (`alembic -c src/streamwise/store/alembic.ini ...`), it opens the database
named by `sqlalchemy.url` or `STREAMWISE_DATABASE_URL` itself.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from streamwise.store.tables import Base

target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone(url: str) -> None:
    from streamwise.store.database import Database

    async with Database.from_url(url) as db, db.engine.connect() as connection:
        await connection.run_sync(run_on)
        await connection.commit()


def configured_url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("STREAMWISE_DATABASE_URL")
    if not url:
        raise RuntimeError("set sqlalchemy.url or STREAMWISE_DATABASE_URL to run migrations")
    return url


def main() -> None:
    if context.config.config_file_name is not None:
        fileConfig(context.config.config_file_name, disable_existing_loggers=False)
    if context.is_offline_mode():
        context.configure(url=configured_url(), target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        run_on(connection)
    else:
        asyncio.run(run_standalone(configured_url()))


main()
