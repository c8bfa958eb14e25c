"""Live server processes, and recovery of what a crashed one left running.

Each process registers a row in `server_instance` and renews its heartbeat while it runs (the
`InstanceLease`), and removes the row when it stops cleanly. A process that dies without removing it
(kill -9, a power cut, OOM) is recognised as dead when its heartbeat is older than the lease, or at
once when its row names this host and its pid no longer exists. Every live process then marks the
exchanges such a process left "running" as "interrupted" (keeping the partial answer it saved),
at start-up and every lease period after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from streamwise.store.database import Database
from streamwise.store.messages import MessageRepository
from streamwise.store.tables import ServerInstance

logger = logging.getLogger("streamwise.store")


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    id: str
    host: str
    pid: int
    startedDate: datetime
    heartbeatDate: datetime


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours
    return True


class InstanceRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def register(self, instance_id: str, host: str, pid: int) -> None:
        now = datetime.now(UTC)
        async with self._db.transaction() as session:
            session.add(
                ServerInstance(id=instance_id, host=host, pid=pid, startedDate=now, heartbeatDate=now)
            )

    async def heartbeat(self, instance_id: str) -> None:
        statement = (
            update(ServerInstance)
            .where(ServerInstance.id == instance_id)
            .values(heartbeatDate=datetime.now(UTC))
            .execution_options(synchronize_session=False)
        )
        async with self._db.transaction() as session:
            await session.execute(statement)

    async def remove(self, instance_ids: Sequence[str]) -> None:
        if not instance_ids:
            return
        statement = (
            delete(ServerInstance)
            .where(ServerInstance.id.in_(list(instance_ids)))
            .execution_options(synchronize_session=False)
        )
        async with self._db.transaction() as session:
            await session.execute(statement)

    async def list(self) -> list[InstanceRecord]:
        async with self._db.session() as session:
            rows = (await session.scalars(select(ServerInstance))).all()
            return [
                InstanceRecord(row.id, row.host, row.pid, row.startedDate, row.heartbeatDate) for row in rows
            ]


def is_dead(instance: InstanceRecord, *, now: datetime, lease: float, host: str) -> bool:
    if instance.host == host and not pid_alive(instance.pid):
        return True
    return now - instance.heartbeatDate > timedelta(seconds=lease)


class InstanceLease:
    """This process's registration: `start` it at start-up and `stop` it at shutdown.

    While held, the heartbeat is renewed every `lease / 3` seconds and recovery runs every `lease`
    seconds. A database hiccup is logged and retried at the next tick; it never stops the server.
    """

    def __init__(self, db: Database, messages: MessageRepository, *, lease: float = 30.0) -> None:
        self.instances = InstanceRepository(db)
        self.messages = messages
        self.lease = lease
        self.id = messages.instance_id or str(uuid.uuid4())
        messages.instance_id = self.id
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Register, then recover what dead processes left running; returns the rows recovered."""
        await self.instances.register(self.id, self.host, self.pid)
        recovered = await self.recover()
        self._task = asyncio.create_task(self._renew(), name="streamwise-instance-lease")
        return recovered

    async def recover(self) -> int:
        instances = await self.instances.list()
        now = datetime.now(UTC)
        dead = [
            i.id
            for i in instances
            if i.id != self.id and is_dead(i, now=now, lease=self.lease, host=self.host)
        ]
        live = [i.id for i in instances if i.id not in dead] + [self.id]
        changed = await self.messages.mark_interrupted(live)
        await self.instances.remove(dead)
        if changed:
            logger.warning(
                "marked %d message(s) of exchanges left running by a stopped server as interrupted", changed
            )
        return changed

    async def _renew(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(self.lease / 3)
            ticks += 1
            try:
                await self.instances.heartbeat(self.id)
                if ticks % 3 == 0:
                    await self.recover()
            except Exception as exc:  # the database may be briefly away: keep serving, try again
                logger.warning("instance heartbeat failed: %s", _short(exc))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.instances.remove([self.id])
        except Exception as exc:
            logger.warning("could not remove this server's instance row: %s", _short(exc))


def _short(exc: BaseException) -> Any:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]
