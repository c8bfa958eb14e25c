"""Upsert records: the keys (content hashes) each vector store namespace holds, and their sources.

Implements the engine's `RecordKeeper` (engine/ingest.py). The vector ids in a store are the keys,
so a record is enough to delete its chunk again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Insert, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import Table

from streamwise.engine.ingest import Record
from streamwise.store.database import Database
from streamwise.store.tables import UpsertRecord

_CHUNK = 500  # keys per IN (...) list: well under every backend's parameter limit
_TABLE = cast(Table, UpsertRecord.__table__)


def _insert_new(dialect: str) -> Insert:
    if dialect == "postgresql":
        return postgresql.insert(_TABLE).on_conflict_do_nothing(index_elements=["namespace", "key"])
    return sqlite.insert(_TABLE).on_conflict_do_nothing(index_elements=["namespace", "key"])


class RecordRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def known(self, namespace: str, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        async with self._db.session() as session:
            for start in range(0, len(keys), _CHUNK):
                part = list(keys[start : start + _CHUNK])
                query = select(UpsertRecord.key).where(
                    UpsertRecord.namespace == namespace, UpsertRecord.key.in_(part)
                )
                found.update((await session.scalars(query)).all())
        return found

    async def listed(self, namespace: str, sources: Sequence[str] | None = None) -> list[Record]:
        """Every record of the namespace, or those of the given sources."""
        query = select(UpsertRecord.key, UpsertRecord.source).where(UpsertRecord.namespace == namespace)
        records: list[Record] = []
        async with self._db.session() as session:
            if sources is None:
                rows = (await session.execute(query)).all()
                return [Record(key, source) for key, source in rows]
            for start in range(0, len(sources), _CHUNK):
                part = list(sources[start : start + _CHUNK])
                rows = (await session.execute(query.where(UpsertRecord.source.in_(part)))).all()
                records.extend(Record(key, source) for key, source in rows)
        return records

    async def commit(self, namespace: str, added: Sequence[Record], removed: Sequence[str]) -> None:
        """Add and remove records in one transaction."""
        now = datetime.now(UTC)
        async with self._db.transaction() as session:
            for start in range(0, len(removed), _CHUNK):
                part = list(removed[start : start + _CHUNK])
                await session.execute(
                    delete(UpsertRecord)
                    .where(UpsertRecord.namespace == namespace, UpsertRecord.key.in_(part))
                    .execution_options(synchronize_session=False)
                )
            if added:
                session.add_all(
                    UpsertRecord(namespace=namespace, key=r.key, source=r.source, createdDate=now)
                    for r in added
                )

    async def forget_namespaces(self, prefix: str) -> None:
        """Drop the records of every namespace under `prefix` (a deleted chatflow's)."""
        async with self._db.transaction() as session:
            await session.execute(
                delete(UpsertRecord)
                .where(UpsertRecord.namespace.startswith(prefix, autoescape=True))
                .execution_options(synchronize_session=False)
            )
