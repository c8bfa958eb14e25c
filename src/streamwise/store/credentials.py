"""Model credentials (an OpenAI key, ...): what `/api/v1/credentials` keeps, encrypted at rest.

A row holds Flowise's fields: `name`, `credentialName` (the kind, `openAIApi`) and `encryptedData`,
the credential's fields as a JSON object encrypted by `CredentialCipher`. Records handed out
(`CredentialRecord`) never carry the data; only `decrypted` gives it, to the engine building a node.

Decrypted data is cached in memory for `CACHE_SECONDS`, so a prediction does not read the table
each time. This process's `update` and `delete` drop the entry at once; another server process
sharing the database sees the change within `CACHE_SECONDS`.

Database failures are re-raised without SQLAlchemy's text, which quotes the statement's parameters
(the encrypted data among them).
"""

from __future__ import annotations

import builtins
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from streamwise.errors import Conflict, StorageError
from streamwise.store.database import Database
from streamwise.store.dates import MonotonicClock, to_js_iso
from streamwise.store.secrets import CredentialCipher, WrongSecretKey
from streamwise.store.tables import Credential

CACHE_SECONDS = 30.0
CACHE_ENTRIES = 1024
# How often `update` re-reads a credential whose data another writer changed under it.
_UPDATE_TRIES = 3

_clock = MonotonicClock()


class CredentialExists(Exception):
    """A credential with the chosen id exists already."""


@dataclass(frozen=True, slots=True)
class CredentialRecord:
    """A credential as the API shows it: never its data, encrypted or not."""

    id: str
    name: str
    credentialName: str
    createdDate: datetime
    updatedDate: datetime

    def to_json(self) -> dict[str, Any]:
        """Flowise's JSON for a credential, less `encryptedData`; dates as `...T..:..:..000Z`."""
        return {
            "id": self.id,
            "name": self.name,
            "credentialName": self.credentialName,
            "createdDate": to_js_iso(self.createdDate),
            "updatedDate": to_js_iso(self.updatedDate),
        }


class _DecryptedCache:
    """Credential id → decrypted fields, for a while; thread-safe, bounded, least recently used out.

    `forget` counts a generation, and `put` stores only what was read in the current one: a read
    that began before an update cannot put the old data back after the update dropped it.
    """

    def __init__(self, seconds: float, entries: int) -> None:
        self._seconds = seconds
        self._entries = entries
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[float, dict[str, str] | None]] = OrderedDict()
        self._generation = 0

    def get(self, credential_id: str) -> tuple[bool, dict[str, str] | None]:
        """(known, fields): fields None for a credential known not to exist."""
        with self._lock:
            found = self._items.get(credential_id)
            if found is None:
                return False, None
            if time.monotonic() - found[0] > self._seconds:
                del self._items[credential_id]
                return False, None
            self._items.move_to_end(credential_id)
            return True, None if found[1] is None else dict(found[1])

    def generation(self) -> int:
        with self._lock:
            return self._generation

    def put(self, credential_id: str, data: Mapping[str, str] | None, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self._items[credential_id] = (time.monotonic(), None if data is None else dict(data))
            self._items.move_to_end(credential_id)
            while len(self._items) > self._entries:
                self._items.popitem(last=False)

    def forget(self, credential_id: str) -> None:
        with self._lock:
            self._generation += 1
            self._items.pop(credential_id, None)


class CredentialRepository:
    def __init__(
        self,
        db: Database,
        cipher: CredentialCipher,
        *,
        cache_seconds: float = CACHE_SECONDS,
        cache_entries: int = CACHE_ENTRIES,
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._cache = _DecryptedCache(cache_seconds, cache_entries)

    async def create(
        self,
        *,
        name: str,
        credential_name: str,
        data: Mapping[str, str],
        credential_id: str | None = None,
    ) -> CredentialRecord:
        """Store a new credential, its data encrypted; `CredentialExists` when the chosen id is taken."""
        now = _clock.tick()
        row = Credential(
            id=credential_id or str(uuid.uuid4()),
            name=name,
            credentialName=credential_name,
            encryptedData=self._cipher.encrypt(data),
            createdDate=now,
            updatedDate=now,
        )
        record = _record(row)
        try:
            with _storing("store the credential"):
                async with self._db.transaction() as session:
                    session.add(row)
        except IntegrityError:
            raise CredentialExists(row.id) from None
        self._cache.forget(row.id)  # it may be remembered as missing
        return record

    async def get(self, credential_id: str) -> CredentialRecord | None:
        with _storing("read the credential"):
            async with self._db.session() as session:
                row = await session.get(Credential, credential_id)
                return None if row is None else _record(row)

    async def list(self, credential_names: Sequence[str] | None = None) -> builtins.list[CredentialRecord]:
        """All credentials, oldest first; only those of the given kinds (`credentialName`) when named."""
        query = select(Credential).order_by(Credential.createdDate, Credential.id)
        if credential_names is not None:
            query = query.where(Credential.credentialName.in_(sorted(set(credential_names))))
        with _storing("list the credentials"):
            async with self._db.session() as session:
                return [_record(row) for row in (await session.scalars(query)).all()]

    async def update(
        self,
        credential_id: str,
        *,
        name: str | None = None,
        credential_name: str | None = None,
        data: Mapping[str, str | None] | None = None,
    ) -> CredentialRecord | None:
        """Change the given fields (and `updatedDate`); None when there is no such credential.

        `data` is merged into the stored fields, as Flowise merges `plainDataObj`; a field set to
        None is removed. The merge is written only if nobody changed the data since it was read.
        """
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = name
        if credential_name is not None:
            values["credentialName"] = credential_name
        for _ in range(_UPDATE_TRIES):
            statement = update(Credential).where(Credential.id == credential_id)
            if data is not None:
                stored = await self._encrypted(credential_id)
                if stored is None:
                    return None
                merged = {**self._cipher.decrypt(stored), **data}
                fresh = {key: value for key, value in merged.items() if value is not None}
                values["encryptedData"] = self._cipher.encrypt(fresh)
                statement = statement.where(Credential.encryptedData == stored)
            statement = (
                statement.values(**values, updatedDate=_clock.tick())
                .returning(Credential)
                .execution_options(synchronize_session=False)
            )
            with _storing("update the credential"):
                async with self._db.transaction() as session:
                    row = (await session.scalars(statement)).one_or_none()
            self._cache.forget(credential_id)
            if row is not None:
                return _record(row)
            if data is None:
                return None
        raise Conflict(f"Credential {credential_id} kept changing while it was updated: try again")

    async def delete(self, credential_id: str) -> bool:
        """Remove a credential; False when there was no such credential."""
        with _storing("delete the credential"):
            async with self._db.transaction() as session:
                removed = await session.execute(
                    delete(Credential)
                    .where(Credential.id == credential_id)
                    .execution_options(synchronize_session=False)
                )
        self._cache.forget(credential_id)
        return cast(CursorResult[Any], removed).rowcount > 0

    async def decrypted(self, credential_id: str) -> dict[str, str] | None:
        """The credential's fields in plain text (a copy), for building a node; None when there is no
        such credential. Raises `WrongSecretKey` when the server's key did not encrypt them."""
        known, cached = self._cache.get(credential_id)
        if known:
            return cached
        generation = self._cache.generation()
        stored = await self._encrypted(credential_id)
        if stored is None:
            # Remembered too: a Flowise export names credentials that are not here, on every request.
            self._cache.put(credential_id, None, generation)
            return None
        data = self._cipher.decrypt(stored)
        self._cache.put(credential_id, data, generation)
        return dict(data)

    async def key_matches(self) -> bool:
        """Whether the server's key decrypts the newest stored credential (True when there is none),
        for a warning at start rather than at the first prediction that needs one."""
        query = select(Credential.encryptedData).order_by(Credential.createdDate.desc()).limit(1)
        with _storing("read the credentials"):
            async with self._db.session() as session:
                stored = await session.scalar(query)
        if stored is None:
            return True
        try:
            self._cipher.decrypt(stored)
        except WrongSecretKey:
            return False
        return True

    async def _encrypted(self, credential_id: str) -> str | None:
        query = select(Credential.encryptedData).where(Credential.id == credential_id)
        with _storing("read the credential"):
            async with self._db.session() as session:
                return await session.scalar(query)


@contextmanager
def _storing(what: str) -> Iterator[None]:
    """Database failures as a `StorageError` whose detail is the driver's own message, without the
    statement and its parameters. Integrity errors pass as they are, for the caller to word."""
    try:
        yield
    except IntegrityError:
        raise
    except DBAPIError as exc:
        raise StorageError(f"Could not {what}", detail=f"{type(exc.orig).__name__}: {exc.orig}") from None


def _record(row: Credential) -> CredentialRecord:
    return CredentialRecord(**{field.name: getattr(row, field.name) for field in fields(CredentialRecord)})
