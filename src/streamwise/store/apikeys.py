"""API keys: what `streamwise apikey` and `/api/v1/apikey` create, list, rename and delete.

Only the hash of a key is stored (`streamwise.security.keys` makes and checks it); the key itself
exists once, in the answer to `create`.
"""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update

from streamwise.store.database import Database
from streamwise.store.dates import MonotonicClock
from streamwise.store.tables import ApiKey, ChatFlow

_clock = MonotonicClock()


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    keyName: str
    lookup: str  # the public part of the key, `sw_<lookup>_...`
    apiSecret: str  # the key's slow hash
    createdDate: datetime
    updatedDate: datetime


class ApiKeyRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, *, name: str, lookup: str, secret_hash: str) -> ApiKeyRecord:
        now = _clock.tick()
        row = ApiKey(
            id=str(uuid.uuid4()),
            keyName=name,
            lookup=lookup,
            apiSecret=secret_hash,
            createdDate=now,
            updatedDate=now,
        )
        record = _record(row)
        async with self._db.transaction() as session:
            session.add(row)
        return record

    async def list(self) -> builtins.list[ApiKeyRecord]:
        query = select(ApiKey).order_by(ApiKey.createdDate)
        async with self._db.session() as session:
            return [_record(row) for row in (await session.scalars(query)).all()]

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        async with self._db.session() as session:
            row = await session.get(ApiKey, key_id)
            return None if row is None else _record(row)

    async def find(self, id_or_name: str) -> builtins.list[ApiKeyRecord]:
        """Keys whose id or name is this (the CLI takes either)."""
        query = select(ApiKey).where((ApiKey.id == id_or_name) | (ApiKey.keyName == id_or_name))
        async with self._db.session() as session:
            return [_record(row) for row in (await session.scalars(query)).all()]

    async def rename(self, key_id: str, name: str) -> ApiKeyRecord | None:
        statement = (
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(keyName=name, updatedDate=_clock.tick())
            .returning(ApiKey)
            .execution_options(synchronize_session=False)
        )
        async with self._db.transaction() as session:
            row = (await session.scalars(statement)).one_or_none()
            return None if row is None else _record(row)

    async def delete(self, key_id: str) -> bool:
        """Remove a key. Chatflows bound to it stay bound, so they stay closed (no key opens them)
        until they are bound to another key or unbound."""
        async with self._db.transaction() as session:
            result = await session.execute(delete(ApiKey).where(ApiKey.id == key_id))
            return bool(getattr(result, "rowcount", 0))

    async def bound_chatflows(self) -> dict[str, builtins.list[tuple[str, str | None, datetime]]]:
        """Per key id, the chatflows bound to it: (name, category, updatedDate)."""
        query = select(ChatFlow.apikeyid, ChatFlow.name, ChatFlow.category, ChatFlow.updatedDate).where(
            ChatFlow.apikeyid.is_not(None)
        )
        bound: dict[str, builtins.list[tuple[str, str | None, datetime]]] = {}
        async with self._db.session() as session:
            for key_id, name, category, updated in (await session.execute(query)).all():
                if key_id:
                    bound.setdefault(key_id, []).append((name, category, updated))
        return bound

    async def count(self) -> int:
        async with self._db.session() as session:
            return int((await session.execute(select(func.count()).select_from(ApiKey))).scalar_one())


def _record(row: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        keyName=row.keyName,
        lookup=row.lookup,
        apiSecret=row.apiSecret,
        createdDate=row.createdDate,
        updatedDate=row.updatedDate,
    )
