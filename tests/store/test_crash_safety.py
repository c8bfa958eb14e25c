"""Crash-safe exchanges in the store: begun as "running", grown in place, finished by an upsert, and
recovered as "interrupted" when the process that ran them is gone."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from streamwise.store import Database, MessageRepository
from streamwise.store.instances import InstanceLease, InstanceRepository, pid_alive
from streamwise.store.tables import ServerInstance
from tests.store.factories import make_exchange

FLOW = "flow-a"


def _running(question: str = "q", session_id: str = "s") -> object:
    return make_exchange(FLOW, question, "", status="running", session_id=session_id)


async def test_a_begun_exchange_is_running_and_left_out_of_memory(messages: MessageRepository) -> None:
    done = make_exchange(FLOW, "earlier", "answer", session_id="s")
    await messages.save_exchange(done)
    begun = make_exchange(FLOW, "now", "", status="running", session_id="s")
    await messages.begin_exchange(begun)

    rows = await messages.list(FLOW)
    assert [(row.content, row.status) for row in rows] == [
        ("earlier", "complete"),
        ("answer", "complete"),
        ("now", "running"),
        ("", "running"),
    ]
    assert [turn.content for turn in await messages.history(FLOW, "s")] == ["earlier", "answer"]


async def test_partials_grow_a_running_answer_and_never_touch_a_finished_one(
    messages: MessageRepository,
) -> None:
    growing = make_exchange(FLOW, "a", "", status="running")
    finished = make_exchange(FLOW, "b", "", status="running")
    await messages.begin_exchange(growing)
    await messages.begin_exchange(finished)
    await messages.save_exchange(dataclasses.replace(finished, answer="final", status="complete"))

    await messages.save_partials([(growing.api_message_id, "so far"), (finished.api_message_id, "stale")])

    answers = {
        row.id: (row.content, row.status) for row in await messages.list(FLOW) if row.role == "apiMessage"
    }
    assert answers[growing.api_message_id] == ("so far", "running")
    assert answers[finished.api_message_id] == ("final", "complete")


async def test_finishing_replaces_the_rows_and_keeps_their_dates(messages: MessageRepository) -> None:
    begun = make_exchange(FLOW, "first", "", status="running", session_id="s")
    await messages.begin_exchange(begun)
    later = make_exchange(FLOW, "second", "B", session_id="s")
    await messages.save_exchange(later)  # a later question finishes first
    await messages.save_exchange(dataclasses.replace(begun, answer="A", status="aborted"))

    rows = await messages.list(FLOW)
    assert [(row.content, row.status) for row in rows] == [
        ("first", "complete"),
        ("A", "aborted"),
        ("second", "complete"),
        ("B", "complete"),
    ]
    assert [turn.content for turn in await messages.history(FLOW, "s")] == ["first", "A", "second", "B"]


async def test_an_exchange_whose_begin_never_landed_is_inserted_whole(messages: MessageRepository) -> None:
    await messages.save_exchange(make_exchange(FLOW, "q", "a", status="error"))
    assert [(row.content, row.status) for row in await messages.list(FLOW)] == [
        ("q", "complete"),
        ("a", "error"),
    ]


async def test_recovery_marks_only_what_dead_processes_left_running(db: Database) -> None:
    alive = MessageRepository(db, instance_id="alive")
    dead = MessageRepository(db, instance_id="dead")
    kept = make_exchange(FLOW, "mine", "", status="running")
    lost = make_exchange(FLOW, "theirs", "", status="running")
    await alive.begin_exchange(kept)
    await dead.begin_exchange(lost)
    await dead.save_partials([(lost.api_message_id, "half an ans")])

    changed = await alive.mark_interrupted(["alive"])

    assert changed == 2
    rows = {row.content: row.status for row in await alive.list(FLOW)}
    assert rows == {"mine": "running", "": "running", "theirs": "complete", "half an ans": "interrupted"}


async def test_a_lease_registers_renews_and_leaves_cleanly(db: Database) -> None:
    lease = InstanceLease(db, MessageRepository(db), lease=30)
    await lease.start()
    [row] = await InstanceRepository(db).list()
    assert (row.id, row.pid) == (lease.id, os.getpid())
    await lease.stop()
    assert await InstanceRepository(db).list() == []


async def test_a_new_process_recovers_at_once_what_a_killed_one_on_this_host_left_running(
    db: Database,
) -> None:
    gone = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import os; print(os.getpid())", stdout=asyncio.subprocess.PIPE
    )
    output, _ = await gone.communicate()
    dead_pid = int(output)
    assert not pid_alive(dead_pid)
    killed = InstanceLease(db, MessageRepository(db, instance_id="killed"), lease=3600)
    killed.pid = dead_pid
    await killed.instances.register(killed.id, killed.host, dead_pid)  # registered, never stopped
    exchange = make_exchange(FLOW, "asked before the crash", "", status="running")
    await killed.messages.begin_exchange(exchange)
    await killed.messages.save_partials([(exchange.api_message_id, "partial")])

    fresh = InstanceLease(db, MessageRepository(db), lease=3600)
    recovered = await fresh.start()
    await fresh.stop()

    assert recovered == 2
    rows = await fresh.messages.list(FLOW)
    assert [(row.content, row.status) for row in rows] == [
        ("asked before the crash", "complete"),
        ("partial", "interrupted"),
    ]
    assert [row.id for row in await InstanceRepository(db).list()] == []


async def test_another_hosts_process_counts_as_dead_only_once_its_heartbeat_is_stale(db: Database) -> None:
    instances = InstanceRepository(db)
    await instances.register("elsewhere", "other-host", 1)
    await MessageRepository(db, instance_id="elsewhere").begin_exchange(
        make_exchange(FLOW, "q", "", status="running")
    )
    lease = InstanceLease(db, MessageRepository(db), lease=30)
    assert await lease.recover() == 0  # fresh heartbeat: still alive
    stale = datetime.now(UTC) - timedelta(seconds=31)
    async with db.transaction() as session:
        await session.execute(update(ServerInstance).values(heartbeatDate=stale))
    assert await lease.recover() == 2
