"""API keys: their format, their slow hash, and the ring of live keys that requests are checked against.

A key reads `sw_<lookup>_<secret>`: 12 hex digits that find the stored row, then 43 random URL-safe
characters. Only an argon2id hash of the whole key is stored. Checking a key against its hash takes
tens of milliseconds on purpose, so the ring does it once per key: after a key has matched, the ring
remembers its SHA-256 digest and later requests compare digests in constant time. Wrong keys are
remembered too (a bounded set of digests), so repeating one costs nothing, and at most two slow
checks run at once, off the event loop, so a flood of made-up keys cannot starve the server. Only a
key whose lookup part is a real key's costs a slow check at all, and after five wrong keys for one
lookup within ten seconds the next ones are refused unchecked for the rest of those ten seconds (a
key that matched before is still known by its digest, so its holder is not locked out).

The ring keeps every key's row in memory and reloads them in the background at most once per
`refresh_seconds`: a key deleted by another server process stops working there within about that
long (at once in the process that deleted it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from streamwise.store.apikeys import ApiKeyRecord, ApiKeyRepository

KEY_PATTERN = re.compile(r"sw_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
logger = logging.getLogger("streamwise.keys")
_HASHER = PasswordHasher()  # argon2id with the library's recommended cost
_SLOW_CHECKS_AT_ONCE = 2
_REMEMBERED_FAILURES = 4096
_FAILURES_PER_WINDOW = 5
_FAILURE_WINDOW_SECONDS = 10.0


def new_key() -> tuple[str, str]:
    """A fresh key and its lookup part."""
    lookup = secrets.token_hex(6)
    return lookup, f"sw_{lookup}_{secrets.token_urlsafe(32)}"


def lookup_of(key: str) -> str | None:
    """The lookup part of a well-formed key; None for anything else."""
    match = KEY_PATTERN.fullmatch(key)
    return match.group(1) if match else None


def hash_key(key: str) -> str:
    return _HASHER.hash(key)


def key_matches(key_hash: str, key: str) -> bool:
    try:
        return _HASHER.verify(key_hash, key)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


@dataclass(frozen=True, slots=True)
class CreatedKey:
    record: ApiKeyRecord
    key: str  # the only time the plaintext exists


class KeyRing:
    def __init__(self, repository: ApiKeyRepository, *, refresh_seconds: float = 1.0) -> None:
        self.repository = repository
        self._refresh_seconds = refresh_seconds
        self._by_lookup: dict[str, ApiKeyRecord] | None = None
        self._loaded_at = 0.0
        self._reload: asyncio.Task[None] | None = None
        self._verified: dict[str, bytes] = {}  # key id -> digest of the key that matched its hash
        self._failed: OrderedDict[bytes, None] = OrderedDict()
        self._failures: dict[str, tuple[float, int]] = {}  # lookup -> (window start, wrong keys)
        self._slow = asyncio.Semaphore(_SLOW_CHECKS_AT_ONCE)

    async def any_keys(self) -> bool:
        return bool(await self._keys())

    async def identify(self, key: str | None) -> ApiKeyRecord | None:
        """The stored key this is, or None (missing, malformed, unknown, deleted or wrong)."""
        if not key:
            return None
        lookup = lookup_of(key)
        if lookup is None:
            return None
        record = (await self._keys()).get(lookup)
        if record is None:
            return None
        digest = hashlib.sha256(key.encode()).digest()
        known = self._verified.get(record.id)
        if known is not None and hmac.compare_digest(known, digest):
            return record
        if digest in self._failed or self._throttled(lookup):
            return None
        async with self._slow:
            matched = await asyncio.to_thread(key_matches, record.apiSecret, key)
        if matched:
            self._verified[record.id] = digest
            return record
        self._failed[digest] = None
        if len(self._failed) > _REMEMBERED_FAILURES:
            self._failed.popitem(last=False)
        self._count_failure(lookup)
        return None

    def _throttled(self, lookup: str) -> bool:
        started, count = self._failures.get(lookup, (0.0, 0))
        return count >= _FAILURES_PER_WINDOW and time.monotonic() - started < _FAILURE_WINDOW_SECONDS

    def _count_failure(self, lookup: str) -> None:
        now = time.monotonic()
        started, count = self._failures.get(lookup, (now, 0))
        if now - started >= _FAILURE_WINDOW_SECONDS:
            started, count = now, 0
        self._failures[lookup] = (started, count + 1)
        if len(self._failures) > _REMEMBERED_FAILURES:  # lookups are real keys': few; stay bounded
            self._failures = {
                name: window
                for name, window in self._failures.items()
                if now - window[0] < _FAILURE_WINDOW_SECONDS
            }

    async def create(self, name: str) -> CreatedKey:
        lookup, key = new_key()
        secret_hash = await asyncio.to_thread(hash_key, key)
        record = await self.repository.add(name=name, lookup=lookup, secret_hash=secret_hash)
        await self.reload()
        return CreatedKey(record, key)

    async def delete(self, key_id: str) -> bool:
        deleted = await self.repository.delete(key_id)
        self._verified.pop(key_id, None)
        await self.reload()
        return deleted

    async def reload(self) -> None:
        records = await self.repository.list()
        self._by_lookup = {record.lookup: record for record in records}
        self._loaded_at = time.monotonic()
        live = {record.id for record in records}
        for key_id in [key_id for key_id in self._verified if key_id not in live]:
            del self._verified[key_id]

    async def _keys(self) -> dict[str, ApiKeyRecord]:
        if self._by_lookup is None:
            await self.reload()
        elif time.monotonic() - self._loaded_at > self._refresh_seconds and (
            self._reload is None or self._reload.done()
        ):
            # Serve from what is loaded and refresh behind the request: no database read in its path.
            self._loaded_at = time.monotonic()
            self._reload = asyncio.create_task(self._background_reload())
        assert self._by_lookup is not None
        return self._by_lookup

    async def _background_reload(self) -> None:
        try:
            await self.reload()
        except Exception as exc:  # the database is away: keep serving the keys loaded before
            logger.warning("could not reload API keys: %s", type(exc).__name__)

    async def aclose(self) -> None:
        if self._reload is not None and not self._reload.done():
            self._reload.cancel()
            await asyncio.gather(self._reload, return_exceptions=True)
