"""One async database handle for the whole app: engine, sessions, migrations, lifetime.

The backend is picked by URL scheme, as broadcaster does. Plain `sqlite:///` and `postgresql://`
URLs (what people put in settings) are rewritten to the async drivers, so callers never name one.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import CursorResult, Executable, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

from streamwise.store.hot_path import HotPath

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# A writer waits this long for SQLite's single write lock before giving up with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000

# PostgreSQL advisory lock held while migrating ("STRMWISE" in ASCII).
MIGRATION_LOCK_KEY = 0x5354524D57495345

_SQLITE_DRIVER = "sqlite+aiosqlite"
_POSTGRES_DRIVER = "postgresql+asyncpg"


def to_async_url(url: str | URL) -> URL:
    """Rewrite a SQLite or PostgreSQL URL to the async driver Streamwise uses.

    `sslmode` (libpq's spelling, common in hosted-Postgres URLs) becomes asyncpg's `ssl`.
    Raises `ValueError` for any other backend.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername=_SQLITE_DRIVER)
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername=_POSTGRES_DRIVER)
        if "sslmode" in parsed.query:
            query = dict(parsed.query)
            query.setdefault("ssl", query.pop("sslmode"))
            parsed = parsed.set(query=query)
        return parsed
    raise ValueError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: use sqlite or postgresql"
    )


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def alembic_config() -> Config:
    """Alembic's configuration, built in code so no alembic.ini has to exist at runtime."""
    config = Config()
    # ConfigParser interpolation treats % specially, and install paths may contain one.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


class Database:
    """Owns the engine and hands out sessions; use `async with Database.from_url(...) as db:`.

    An in-memory SQLite database lives on one shared connection (otherwise every connection would
    see its own empty database), so its sessions take turns: do not open a session while holding
    another one of the same in-memory database.
    """

    def __init__(
        self, engine: AsyncEngine, *, one_connection: bool = False, hot: HotPath | None = None
    ) -> None:
        self.engine = engine
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            engine, expire_on_commit=False
        )
        self._turns: asyncio.Lock | None = asyncio.Lock() if one_connection else None
        # SQLite files: the prediction path's short statements, run synchronously (see hot_path.py).
        self.hot = hot

    @classmethod
    def from_url(cls, url: str | URL, *, echo: bool = False) -> Database:
        async_url = to_async_url(url)
        if async_url.get_backend_name() == "sqlite":
            return cls._sqlite(async_url, echo=echo)
        return cls(create_async_engine(async_url, echo=echo, pool_pre_ping=True))

    @classmethod
    def _sqlite(cls, url: URL, *, echo: bool) -> Database:
        if is_memory_sqlite(url):
            engine = create_async_engine(
                url.set(database=None),
                echo=echo,
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
            )
            return cls(engine, one_connection=True)
        assert url.database is not None
        if not url.database.startswith("file:"):
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo)
        event.listen(engine.sync_engine, "connect", _prepare_sqlite_connection)
        return cls(engine, hot=HotPath(url))

    @property
    def url(self) -> URL:
        return self.engine.url

    @property
    def dialect(self) -> str:
        """`"sqlite"` or `"postgresql"`."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._turn(), self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on normal exit, rolled back on an exception."""
        async with self.session() as session, session.begin():
            yield session

    async def execute_alone(self, statement: Executable) -> int:
        """Run one statement that is a transaction by itself; its row count. On PostgreSQL it runs in
        autocommit, one round trip where BEGIN, statement, COMMIT are three (the dispatch path's
        writes); elsewhere in a transaction of its own."""
        if self.dialect == "postgresql":
            async with self._turn(), self.engine.connect() as connection:
                # Reset to the pool's isolation level when the connection goes back to the pool.
                alone = await connection.execution_options(isolation_level="AUTOCOMMIT")
                result = cast(CursorResult[Any], await alone.execute(statement))
                return result.rowcount
        async with self.transaction() as session:
            result = cast(CursorResult[Any], await session.execute(statement))
            return result.rowcount

    async def migrate(self) -> None:
        """Bring the schema to the newest revision; a no-op when it is already there.

        Safe to call from several processes at once (server workers starting together): they take
        turns, and all but the first find nothing to do.
        """
        async with _migration_turn(), self._turn(), self.engine.connect() as connection:
            await connection.run_sync(_upgrade_to_head)
            await connection.commit()

    async def dispose(self) -> None:
        if self.hot is not None:
            self.hot.close()
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    def _turn(self) -> AbstractAsyncContextManager[object]:
        return self._turns if self._turns is not None else nullcontext()


_migration_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _migration_turn() -> asyncio.Lock:
    """Alembic keeps the migration in progress in module globals, so a process runs one at a time."""
    loop = asyncio.get_running_loop()
    lock = _migration_turns.get(loop)
    if lock is None:
        lock = _migration_turns[loop] = asyncio.Lock()
    return lock


def _upgrade_to_head(connection: Connection) -> None:
    _lock_for_migration(connection)
    config = alembic_config()
    # env.py picks this up and migrates on our connection instead of opening its own.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _lock_for_migration(connection: Connection) -> None:
    """Make other processes migrating the same database wait until this transaction ends.

    Alembic then runs inside the transaction begun here, which `Database.migrate` commits.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _prepare_sqlite_connection(dbapi_connection: Any, _connection_record: Any) -> None:
    """WAL lets readers run while one writer writes; the busy timeout makes writers queue, not fail."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()
