"""Short statements on a SQLite file, run right on the event loop's thread.

Every statement through the async engine (aiosqlite) is a few round trips through a worker thread:
about 1 ms of wall time per exchange write or memory read, and the interpreter lock changing hands
at each step, which slows every stream running meanwhile. The statements of the prediction path take
50-120 µs in SQLite itself, so they run synchronously here instead, on a connection of their own:

- `busy_timeout` is 0: when another connection holds the write lock, `Busy` is raised at once (the
  loop never sleeps in SQLite's busy handler) and the caller takes the async path, which waits;
- WAL with `synchronous=NORMAL`, as on the async engine: a commit does not wait for the disk;
- automatic checkpoints are off on this connection (a checkpoint copies the log into the database
  and syncs it); the async engine's connections, which commit every few seconds (the instance
  heartbeat), keep checkpointing in their worker thread.

Only the repositories use this, and only for statements whose cost is bounded (a few rows, or the
newest `max_history_turns` turns of one session).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, Executable, Row, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool


class Busy(Exception):
    """SQLite is locked by another connection: use the async path."""


class HotPath:
    def __init__(self, url: URL) -> None:
        self.engine: Engine = create_engine(
            url.set(drivername="sqlite"),
            poolclass=StaticPool,  # one connection, used by the event loop's thread only
            connect_args={"check_same_thread": False},
        )
        event.listen(self.engine, "connect", _prepare)

    def read(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Sequence[Row[Any]]:
        try:
            with self.engine.connect() as connection:
                return connection.execute(statement, params or {}).all()
        except OperationalError as exc:
            raise _busy_or(exc) from exc

    def write(self, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
        try:
            with self.engine.begin() as connection:
                connection.execute(statement, list(rows))
        except OperationalError as exc:
            raise _busy_or(exc) from exc

    def close(self) -> None:
        self.engine.dispose()


def _busy_or(exc: OperationalError) -> BaseException:
    text = str(exc.orig).lower()
    return Busy(text) if "locked" in text or "busy" in text else exc


def _prepare(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout = 0")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA wal_autocheckpoint = 0")
    finally:
        cursor.close()
