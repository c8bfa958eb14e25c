"""Runs dispatched to workers (scale-out mode): the database is the truth for each run's status.

An API node `create`s a run as **queued** and hands it to the workers through Redis. A worker that
takes it `claim`s it with its attempt, the fencing token Redis gave it (INCR of the run's attempt
key: 1 for the first worker, one more on every take-over), and the run is **running**. It ends in
one of the finished states, and never leaves it:

- **complete**: the answer was given in full;
- **aborted**: the client (or an operator) cancelled it;
- **error**: it failed, and `error` holds the message the client was told;
- **interrupted**: its worker stopped (crashed, was killed, lost its lease) while running it.

    queued ──claim──▶ running ──finish──▶ complete | aborted | error | interrupted
       │                 ▲ │
       │                 └─┘ claim by a newer attempt (take-over)
       └──finish(attempt=0)──▶ a finished state   (cancelled, or timed out, before any worker took it)

The fencing rule: `attempt` on the row is the token of the worker that holds the run (0 while it is
queued). `claim(attempt=n)` succeeds only while the run is active (queued or running) and its attempt
is below n, so a worker that was taken over cannot claim the run back; `finish(attempt=n)` succeeds
only while the run is active and its attempt is exactly n, so such a worker cannot overwrite the
outcome either. `finish(attempt=0)` is the API node ending a run no worker ever claimed, and only
works while the run is still queued. Once finished, a run changes no more: a late `claim` or
`finish` returns False. `interrupt_workers` ends the running runs of workers known to be gone
whatever their attempt; such a worker, were it to come back, finds its run finished.

Each method is one short transaction (a lone statement, in autocommit on PostgreSQL); `claim` and
`finish` are a single conditional UPDATE whose row count says whether it won, so processes racing
on one run (on PostgreSQL or SQLite) cannot both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, delete, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from streamwise.store.database import Database
from streamwise.store.dates import MonotonicClock
from streamwise.store.tables import RunRow

RunState = Literal["queued", "running", "complete", "aborted", "error", "interrupted"]

ACTIVE: frozenset[RunState] = frozenset({"queued", "running"})
FINISHED: frozenset[RunState] = frozenset({"complete", "aborted", "error", "interrupted"})

_clock = MonotonicClock()


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    chatflowid: str
    chatId: str
    sessionId: str | None
    status: RunState
    attempt: int  # the fencing token of the worker holding the run; 0 while queued
    worker: str | None  # the consumer name of the worker that claimed it last
    error: str | None  # the message the client was told, when it ended in error
    failure: str | None  # the kind of that error: a `streamwise.errors` class name
    createdDate: datetime
    updatedDate: datetime


class RunRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, run_id: str, chatflow_id: str, chat_id: str, session_id: str | None) -> RunRecord:
        """Record a new run as queued. An id already taken raises `sqlalchemy.exc.IntegrityError`."""
        now = _clock.tick()
        values: dict[str, Any] = {
            "id": run_id,
            "chatflowid": chatflow_id,
            "chatId": chat_id,
            "sessionId": session_id,
            "status": "queued",
            "attempt": 0,
            "worker": None,
            "error": None,
            "failure": None,
            "createdDate": now,
            "updatedDate": now,
        }
        await self._db.execute_alone(insert(RunRow).values(**values))
        return RunRecord(**values)

    async def get(self, run_id: str) -> RunRecord | None:
        async with self._db.session() as session:
            row = await session.get(RunRow, run_id)
            return None if row is None else _record(row)

    async def claim(self, run_id: str, attempt: int, worker: str) -> bool:
        """Mark the run running under `attempt` and `worker`, if it is active and its attempt is lower.

        False when it is missing, finished, or already held by this or a newer attempt.
        """
        if attempt < 1:
            raise ValueError(f"a worker's attempt is 1 or more, got {attempt}")
        return await self._update(
            (RunRow.id == run_id, RunRow.status.in_(ACTIVE), RunRow.attempt < attempt),
            status="running",
            attempt=attempt,
            worker=worker,
        )

    async def finish(
        self,
        run_id: str,
        status: RunState,
        *,
        attempt: int,
        error: str | None = None,
        failure: str | None = None,
    ) -> bool:
        """End the run in `status` (a finished state), if it is active and held by `attempt`.

        `attempt=0` is the API node ending a run no worker claimed; it works only while it is queued.
        False when the run is missing, finished, or held by another attempt.
        """
        if status not in FINISHED:
            raise ValueError(f"a run finishes as one of {sorted(FINISHED)}, not {status!r}")
        if attempt < 0:
            raise ValueError(f"attempts are 0 or more, got {attempt}")
        held = RunRow.status == "queued" if attempt == 0 else RunRow.status.in_(ACTIVE)
        return await self._update(
            (RunRow.id == run_id, RunRow.attempt == attempt, held),
            status=status,
            error=error,
            failure=failure,
        )

    async def active_for_chat(self, chatflow_id: str, chat_id: str) -> list[str]:
        """The ids of this chat's queued or running runs, oldest first."""
        query = (
            select(RunRow.id)
            .where(RunRow.chatflowid == chatflow_id, RunRow.chatId == chat_id, RunRow.status.in_(ACTIVE))
            .order_by(RunRow.createdDate, RunRow.id)
        )
        async with self._db.session() as session:
            return list((await session.scalars(query)).all())

    async def interrupt_workers(self, workers: Sequence[str]) -> int:
        """Mark the runs these (stopped) workers were running as interrupted; returns how many.

        Queued runs are left alone: no worker holds them yet.
        """
        if not workers:
            return 0
        return await self._update_count(
            (RunRow.status == "running", RunRow.worker.in_(list(workers))), status="interrupted"
        )

    async def delete_finished_before(self, when: datetime) -> int:
        """Remove finished runs last changed before `when` (naive means UTC); returns how many."""
        statement = (
            delete(RunRow)
            .where(RunRow.status.in_(FINISHED), RunRow.updatedDate < when)
            .execution_options(synchronize_session=False)
        )
        async with self._db.transaction() as session:
            result = cast(CursorResult[Any], await session.execute(statement))
            return result.rowcount

    async def _update(self, where: Sequence[ColumnElement[bool]], **values: object) -> bool:
        return await self._update_count(where, **values) == 1

    async def _update_count(self, where: Sequence[ColumnElement[bool]], **values: object) -> int:
        statement = (
            update(RunRow)
            .where(*where)
            .values(**values, updatedDate=_clock.tick())
            .execution_options(synchronize_session=False)
        )
        return await self._db.execute_alone(statement)


def _record(row: RunRow) -> RunRecord:
    return RunRecord(
        id=row.id,
        chatflowid=row.chatflowid,
        chatId=row.chatId,
        sessionId=row.sessionId,
        status=cast(RunState, row.status),
        attempt=row.attempt,
        worker=row.worker,
        error=row.error,
        failure=row.failure,
        createdDate=row.createdDate,
        updatedDate=row.updatedDate,
    )
