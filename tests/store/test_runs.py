"""Run status in the database: the states, the fencing rule, races between processes, housekeeping,
and the migration that makes the table. Every test runs on SQLite and on PostgreSQL (`db`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from streamwise.store import Database
from streamwise.store.database import alembic_config
from streamwise.store.runs import ACTIVE, FINISHED, RunRecord, RunRepository
from streamwise.store.tables import Base, RunRow

FLOW = "11111111-1111-4111-8111-111111111111"
OTHER_FLOW = "22222222-2222-4222-8222-222222222222"


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def runs(db: Database) -> RunRepository:
    return RunRepository(db)


async def get(runs: RunRepository, run_id: str) -> RunRecord:
    record = await runs.get(run_id)
    assert record is not None
    return record


# The states


async def test_a_run_goes_queued_running_complete(runs: RunRepository) -> None:
    run_id = new_id()
    created = await runs.create(run_id, FLOW, "chat-1", "session-1")

    assert created == await runs.get(run_id)
    assert (created.status, created.attempt, created.worker, created.error) == ("queued", 0, None, None)
    assert (created.chatflowid, created.chatId, created.sessionId) == (FLOW, "chat-1", "session-1")
    assert created.createdDate == created.updatedDate
    assert created.createdDate.tzinfo is not None

    assert await runs.claim(run_id, 1, "worker-a")
    running = await get(runs, run_id)
    assert (running.status, running.attempt, running.worker) == ("running", 1, "worker-a")
    assert running.updatedDate > created.updatedDate
    assert running.createdDate == created.createdDate

    assert await runs.finish(run_id, "complete", attempt=1)
    complete = await get(runs, run_id)
    assert (complete.status, complete.attempt, complete.worker, complete.error) == (
        "complete",
        1,
        "worker-a",
        None,
    )
    assert complete.updatedDate > running.updatedDate


async def test_a_failed_run_keeps_the_message_the_client_was_told(runs: RunRepository) -> None:
    run_id = new_id()
    await runs.create(run_id, FLOW, "chat", None)
    assert await runs.claim(run_id, 1, "worker-a")

    assert await runs.finish(run_id, "error", attempt=1, error="the model refused the request")

    record = await get(runs, run_id)
    assert (record.status, record.error, record.sessionId) == ("error", "the model refused the request", None)


async def test_a_finished_run_changes_no_more(runs: RunRepository) -> None:
    run_id = new_id()
    await runs.create(run_id, FLOW, "chat", None)
    assert await runs.claim(run_id, 1, "worker-a")
    assert await runs.finish(run_id, "aborted", attempt=1)
    before = await get(runs, run_id)

    assert not await runs.finish(run_id, "complete", attempt=1)
    assert not await runs.finish(run_id, "error", attempt=0, error="late")
    assert not await runs.claim(run_id, 2, "worker-b")

    assert await runs.get(run_id) == before


async def test_a_missing_run_is_neither_claimed_nor_finished(runs: RunRepository) -> None:
    missing = new_id()

    assert await runs.get(missing) is None
    assert not await runs.claim(missing, 1, "worker-a")
    assert not await runs.finish(missing, "complete", attempt=1)
    assert not await runs.finish(missing, "aborted", attempt=0)
    assert await runs.get(missing) is None


async def test_a_run_id_is_recorded_once(runs: RunRepository) -> None:
    run_id = new_id()
    await runs.create(run_id, FLOW, "chat", None)

    with pytest.raises(IntegrityError):
        await runs.create(run_id, FLOW, "chat", None)


async def test_impossible_transitions_are_refused(runs: RunRepository) -> None:
    run_id = new_id()
    await runs.create(run_id, FLOW, "chat", None)

    with pytest.raises(ValueError, match="attempt"):
        await runs.claim(run_id, 0, "worker-a")
    with pytest.raises(ValueError, match="running"):
        await runs.finish(run_id, "running", attempt=0)
    with pytest.raises(ValueError, match="queued"):
        await runs.finish(run_id, "queued", attempt=0)
    with pytest.raises(ValueError, match="attempt"):
        await runs.finish(run_id, "aborted", attempt=-1)

    assert (await get(runs, run_id)).status == "queued"


def test_the_states_are_active_or_finished() -> None:
    assert frozenset({"queued", "running"}) == ACTIVE
    assert frozenset({"complete", "aborted", "error", "interrupted"}) == FINISHED


# Fencing


async def test_a_newer_attempt_takes_over_and_the_stale_one_is_fenced_off(runs: RunRepository) -> None:
    run_id = new_id()
    await runs.create(run_id, FLOW, "chat", None)
    assert await runs.claim(run_id, 1, "worker-a")

    assert await runs.claim(run_id, 2, "worker-b")  # worker-a's lease ran out: take-over

    assert not await runs.claim(run_id, 1, "worker-a")
    assert not await runs.finish(run_id, "complete", attempt=1)
    assert not await runs.finish(run_id, "error", attempt=1, error="stale")
    assert not await runs.finish(run_id, "aborted", attempt=0)
    taken = await get(runs, run_id)
    assert (taken.status, taken.attempt, taken.worker, taken.error) == ("running", 2, "worker-b", None)

    assert await runs.finish(run_id, "complete", attempt=2)
    assert (await get(runs, run_id)).status == "complete"


async def test_an_attempt_cannot_claim_twice_nor_below_the_current_one(runs: RunRepository) -> None:
    run_id = new_id()
    await runs.create(run_id, FLOW, "chat", None)
    assert await runs.claim(run_id, 3, "worker-c")  # attempts 1 and 2 never got here

    assert not await runs.claim(run_id, 3, "worker-x")
    assert not await runs.claim(run_id, 2, "worker-b")
    assert not await runs.finish(run_id, "complete", attempt=2)
    assert not await runs.finish(run_id, "complete", attempt=4)  # nobody holds attempt 4

    record = await get(runs, run_id)
    assert (record.status, record.attempt, record.worker) == ("running", 3, "worker-c")


async def test_the_api_node_finishes_with_attempt_zero_only_while_queued(runs: RunRepository) -> None:
    waited = new_id()
    await runs.create(waited, FLOW, "chat", None)

    assert await runs.finish(waited, "error", attempt=0, error="no worker took the run in time")

    record = await get(runs, waited)
    assert (record.status, record.attempt, record.worker) == ("error", 0, None)
    assert record.error == "no worker took the run in time"
    assert not await runs.claim(waited, 1, "worker-a")  # too late: the client was told already

    claimed = new_id()
    await runs.create(claimed, FLOW, "chat", None)
    assert await runs.claim(claimed, 1, "worker-a")

    assert not await runs.finish(claimed, "aborted", attempt=0)
    assert (await get(runs, claimed)).status == "running"


# Races between processes: two handles on one database are two processes' connection pools.


@pytest.fixture
async def other_db(db: Database, database_url: str) -> AsyncIterator[Database]:
    async with Database.from_url(database_url) as other:
        yield other


async def test_racing_claims_leave_the_newest_attempt_holding_the_run(
    db: Database, other_db: Database
) -> None:
    here, there = RunRepository(db), RunRepository(other_db)
    for _ in range(5):
        run_id = new_id()
        await here.create(run_id, FLOW, "chat", None)
        attempts = list(range(1, 9))

        won = await asyncio.gather(
            *(
                (here if attempt % 2 else there).claim(run_id, attempt, f"worker-{attempt}")
                for attempt in reversed(attempts)
            )
        )

        assert won[0]  # attempt 8, the newest, always gets the run
        record = await get(here, run_id)
        assert (record.status, record.attempt, record.worker) == ("running", 8, "worker-8")


async def test_a_finish_racing_a_take_over_wins_or_loses_whole(db: Database, other_db: Database) -> None:
    here, there = RunRepository(db), RunRepository(other_db)
    for _ in range(10):
        run_id = new_id()
        await here.create(run_id, FLOW, "chat", None)
        assert await here.claim(run_id, 1, "worker-a")

        finished, taken = await asyncio.gather(
            here.finish(run_id, "complete", attempt=1), there.claim(run_id, 2, "worker-b")
        )

        assert finished != taken
        record = await get(here, run_id)
        expected = ("complete", 1, "worker-a") if finished else ("running", 2, "worker-b")
        assert (record.status, record.attempt, record.worker) == expected


async def test_a_queue_deadline_racing_a_claim_wins_or_loses_whole(db: Database, other_db: Database) -> None:
    here, there = RunRepository(db), RunRepository(other_db)
    for _ in range(10):
        run_id = new_id()
        await here.create(run_id, FLOW, "chat", None)

        timed_out, claimed = await asyncio.gather(
            here.finish(run_id, "error", attempt=0, error="timed out in the queue"),
            there.claim(run_id, 1, "worker-a"),
        )

        assert timed_out != claimed
        record = await get(here, run_id)
        assert record.status == ("error" if timed_out else "running")


@asynccontextmanager
async def holding_the_run(db: Database, run_id: str) -> AsyncIterator[None]:
    """Keep every writer of this run waiting (a row lock on PostgreSQL, the write lock on SQLite)
    until the block ends, so that writers started meanwhile really meet."""
    async with db.engine.connect() as connection:
        if db.dialect == "postgresql":
            await connection.execute(select(RunRow.id).where(RunRow.id == run_id).with_for_update())
        else:
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            await connection.rollback()


async def waiting_writers(db: Database, count: int) -> None:
    """Return once `count` statements wait for a lock (PostgreSQL); SQLite cannot tell, so give them
    a moment to start."""
    if db.dialect != "postgresql":
        await asyncio.sleep(0.2)
        return
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with db.engine.connect() as connection:
        for _ in range(500):
            waiting = (await connection.execute(query)).scalar_one()
            await connection.rollback()  # a transaction sees one snapshot of pg_stat_activity
            if waiting >= count:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"{count} writers did not come to wait for the run")


async def meet(db: Database, run_id: str, first: Awaitable[bool], second: Awaitable[bool]) -> list[bool]:
    """Start `first`, then `second`, both held up by a lock on the run, then let them go."""
    async with holding_the_run(db, run_id):
        tasks = [asyncio.ensure_future(first)]
        await waiting_writers(db, 1)
        tasks.append(asyncio.ensure_future(second))
        await waiting_writers(db, 2)
        assert not any(task.done() for task in tasks)
    return list(await asyncio.gather(*tasks))


async def test_a_stale_claim_queued_behind_a_take_over_loses(db: Database, other_db: Database) -> None:
    """PostgreSQL re-checks the WHERE of a waiting UPDATE against the row the winner left."""
    here, there = RunRepository(db), RunRepository(other_db)
    run_id = new_id()
    await here.create(run_id, FLOW, "chat", None)

    newer, older = await meet(
        db, run_id, here.claim(run_id, 2, "worker-b"), there.claim(run_id, 1, "worker-a")
    )

    assert newer
    if db.dialect == "postgresql":  # SQLite lets waiting writers in in no fixed order
        assert not older
    record = await get(here, run_id)
    assert (record.status, record.attempt, record.worker) == ("running", 2, "worker-b")


@pytest.mark.parametrize("first", ["finish", "take-over"])
async def test_a_finish_and_a_take_over_that_meet_have_one_winner(
    db: Database, other_db: Database, first: str
) -> None:
    here, there = RunRepository(db), RunRepository(other_db)
    run_id = new_id()
    await here.create(run_id, FLOW, "chat", None)
    assert await here.claim(run_id, 1, "worker-a")
    finish = here.finish(run_id, "complete", attempt=1)
    take_over = there.claim(run_id, 2, "worker-b")

    if first == "finish":
        finished, taken = await meet(db, run_id, finish, take_over)
    else:
        taken, finished = await meet(db, run_id, take_over, finish)

    assert finished != taken
    if db.dialect == "postgresql":
        assert finished == (first == "finish")
    record = await get(here, run_id)
    expected = ("complete", 1, "worker-a") if finished else ("running", 2, "worker-b")
    assert (record.status, record.attempt, record.worker) == expected


# Queries and housekeeping


async def test_the_active_runs_of_a_chat_oldest_first(runs: RunRepository) -> None:
    oldest, queued, finished, newest = new_id(), new_id(), new_id(), new_id()
    await runs.create(oldest, FLOW, "chat", None)
    await runs.create(queued, FLOW, "chat", "s")
    await runs.create(finished, FLOW, "chat", None)
    await runs.create(new_id(), FLOW, "another chat", None)
    await runs.create(new_id(), OTHER_FLOW, "chat", None)
    await runs.create(newest, FLOW, "chat", None)
    assert await runs.claim(oldest, 1, "worker-a")
    assert await runs.claim(newest, 1, "worker-b")
    assert await runs.claim(finished, 1, "worker-a")
    assert await runs.finish(finished, "complete", attempt=1)

    assert await runs.active_for_chat(FLOW, "chat") == [oldest, queued, newest]
    assert await runs.active_for_chat(FLOW, "nobody's chat") == []

    assert await runs.finish(queued, "aborted", attempt=0)
    assert await runs.active_for_chat(FLOW, "chat") == [oldest, newest]


async def test_the_running_runs_of_stopped_workers_are_interrupted(runs: RunRepository) -> None:
    of_a, of_b, done_by_a, queued, of_c = (new_id() for _ in range(5))
    for run_id in (of_a, of_b, done_by_a, queued, of_c):
        await runs.create(run_id, FLOW, "chat", None)
    assert await runs.claim(of_a, 1, "worker-a")
    assert await runs.claim(of_b, 1, "worker-b")
    assert await runs.claim(done_by_a, 1, "worker-a")
    assert await runs.finish(done_by_a, "complete", attempt=1)
    assert await runs.claim(of_c, 1, "worker-a")
    assert await runs.claim(of_c, 2, "worker-c")  # worker-c took it over from worker-a

    assert await runs.interrupt_workers(["worker-a", "worker-gone"]) == 1

    statuses = {run_id: (await get(runs, run_id)).status for run_id in (of_a, of_b, done_by_a, queued, of_c)}
    assert statuses == {
        of_a: "interrupted",
        of_b: "running",
        done_by_a: "complete",
        queued: "queued",
        of_c: "running",
    }
    # The stopped worker may come back to life: it can no longer write the run.
    assert not await runs.finish(of_a, "complete", attempt=1)
    assert not await runs.claim(of_a, 2, "worker-b")
    assert (await get(runs, of_a)).status == "interrupted"

    assert await runs.interrupt_workers([]) == 0
    assert await runs.interrupt_workers(["worker-a"]) == 0


async def test_finished_runs_are_deleted_once_old_enough(db: Database, runs: RunRepository) -> None:
    old_done, old_running, old_queued, new_done = (new_id() for _ in range(4))
    for run_id in (old_done, old_running, old_queued, new_done):
        await runs.create(run_id, FLOW, "chat", None)
    for run_id in (old_done, old_running, new_done):
        assert await runs.claim(run_id, 1, "worker-a")
    assert await runs.finish(old_done, "complete", attempt=1)
    assert await runs.finish(new_done, "error", attempt=1, error="boom")
    long_ago = datetime.now(UTC) - timedelta(days=30)
    async with db.transaction() as session:
        await session.execute(
            update(RunRow)
            .where(RunRow.id.in_([old_done, old_running, old_queued]))
            .values(updatedDate=long_ago)
        )

    assert await runs.delete_finished_before(datetime.now(UTC) - timedelta(days=1)) == 1

    assert await runs.get(old_done) is None
    for kept in (old_running, old_queued, new_done):
        assert await runs.get(kept) is not None
    # A naive cut-off is UTC.
    cutoff = (datetime.now(UTC) + timedelta(minutes=1)).replace(tzinfo=None)
    assert await runs.delete_finished_before(cutoff) == 1
    assert await runs.get(new_done) is None
    assert await runs.active_for_chat(FLOW, "chat") == [old_running, old_queued]


# The migration


def _run_schema(connection: Connection) -> tuple[dict[str, tuple[str, bool]], dict[str, list[str | None]]]:
    inspector = inspect(connection)
    columns = {
        column["name"]: (type(column["type"]).__name__, column["nullable"])
        for column in inspector.get_columns("run")
    }
    indexes = {index["name"] or "": list(index["column_names"]) for index in inspector.get_indexes("run")}
    return columns, indexes


def _run_differences(connection: Connection) -> list[object]:
    """What alembic would change to make the database match the models, as far as `run` goes."""
    differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    return [d for d in differences if _table_of(d) == "run"]


def _table_of(difference: object) -> object:
    change = difference[0] if isinstance(difference, list) else difference
    assert isinstance(change, tuple)
    kind, *details = change
    if kind in ("add_table", "remove_table"):
        return details[0].name
    if kind in ("add_column", "remove_column") or kind.startswith("modify_"):
        return details[1]  # (schema, table, ...)
    return details[0].table.name  # indexes and constraints


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def test_the_migration_builds_the_run_table_of_the_models(db: Database) -> None:
    async with db.engine.connect() as connection:
        columns, indexes = await connection.run_sync(_run_schema)
        differences = await connection.run_sync(_run_differences)

    assert set(columns) == {column.name for column in RunRow.__table__.columns}
    assert {name for name, (_, nullable) in columns.items() if nullable} == {
        "sessionId",
        "worker",
        "error",
        "failure",
    }
    assert indexes == {
        "ix_run_chatflowid_chatId_status": ["chatflowid", "chatId", "status"],
        "ix_run_status_updatedDate": ["status", "updatedDate"],
    }
    assert differences == []


async def test_the_run_migration_is_the_head_and_undoes_cleanly(db: Database) -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == "0006"

    async with db.engine.connect() as connection:
        await connection.run_sync(_downgrade, "0005")
        await connection.commit()
        assert "run" not in await connection.run_sync(_tables)

    await db.migrate()

    async with db.engine.connect() as connection:
        assert "run" in await connection.run_sync(_tables)
        versions = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert [row[0] for row in versions] == ["0006"]
    runs = RunRepository(db)
    run_id = new_id()
    await runs.create(run_id, FLOW, "chat", None)
    assert await runs.claim(run_id, 1, "worker-a")
