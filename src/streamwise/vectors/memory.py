"""In-memory vectors in numpy, exact search, lost on restart (Flowise's In-Memory Vector Store).

Rows live in a buffer that grows by doubling, so adding a batch costs the batch, not the store.
Searches take a snapshot (the buffer and the row count, under a lock held for microseconds) and
compute outside the lock, so they run in parallel with each other and with an add; an add that
appends only writes rows past every snapshot's end, and one that replaces or deletes rows builds new
arrays instead of changing the ones a search may be reading.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamwise.engine.retrieval import Document, Scored
from streamwise.vectors import checks, filters, similarity
from streamwise.vectors.checks import Held, Matrix
from streamwise.vectors.scope import Scope


@dataclass
class _Rows:
    buffer: Matrix  # (capacity, dimension); rows [0, size) are live
    ids: list[str] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.ids)


class MemoryBackend:
    """One namespace of in-memory vectors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: _Rows | None = None
        self._row_of: dict[str, int] = {}
        self._embedding_key: str | None = None

    async def add(
        self,
        scope: Scope,
        ids: Sequence[str],
        documents: Sequence[Document],
        vectors: Sequence[Sequence[float]],
    ) -> None:
        await asyncio.to_thread(self._add, scope, ids, documents, vectors)

    def _add(
        self,
        scope: Scope,
        ids: Sequence[str],
        documents: Sequence[Document],
        vectors: Sequence[Sequence[float]],
    ) -> None:
        batch = checks.batch(scope, ids, documents, vectors)
        if not batch.ids:
            return
        with self._lock:
            checks.fits(scope, self._held(), batch.dimension)
            current = self._rows
            if current is None or current.size == 0:
                current = _Rows(np.empty((max(16, len(batch.ids)), batch.dimension), np.float32))
                self._row_of = {}
                self._embedding_key = scope.embedding_key
            replaced = [at for at, entry_id in enumerate(batch.ids) if entry_id in self._row_of]
            fresh = [at for at, entry_id in enumerate(batch.ids) if entry_id not in self._row_of]
            size = current.size
            needed = size + len(fresh)
            capacity = current.buffer.shape[0]
            if replaced or needed > capacity:
                # Rows a search may be reading would change, or there is no room: new arrays,
                # published when complete. Appending alone writes past every snapshot's end.
                buffer = np.empty(
                    (max(needed, 2 * capacity) if needed > capacity else capacity, batch.dimension),
                    np.float32,
                )
                buffer[:size] = current.buffer[:size]
                if replaced:
                    rows = _Rows(buffer, list(current.ids), list(current.documents))
                else:
                    rows = _Rows(buffer, current.ids, current.documents)
            else:
                rows = current
            for at in replaced:
                row = self._row_of[batch.ids[at]]
                rows.buffer[row] = batch.vectors[at]
                rows.documents[row] = batch.documents[at]
            rows.buffer[size:needed] = batch.vectors[fresh]
            for offset, at in enumerate(fresh):
                self._row_of[batch.ids[at]] = size + offset
            rows.documents.extend([batch.documents[at] for at in fresh])
            # Last, and in one step: `count` reads the length without the lock.
            rows.ids.extend([batch.ids[at] for at in fresh])
            self._rows = rows

    async def delete(self, scope: Scope, ids: Sequence[str]) -> None:
        await asyncio.to_thread(self._delete, ids)

    def _delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            rows = self._rows
            gone = {str(entry_id) for entry_id in ids} & self._row_of.keys()
            if rows is None or not gone:
                return
            keep = [row for row, entry_id in enumerate(rows.ids) if entry_id not in gone]
            buffer = np.empty((max(16, len(keep)), rows.buffer.shape[1]), np.float32)
            buffer[: len(keep)] = rows.buffer[keep]
            self._rows = _Rows(buffer, [rows.ids[row] for row in keep], [rows.documents[row] for row in keep])
            self._row_of = {entry_id: row for row, entry_id in enumerate(self._rows.ids)}

    async def search(
        self, scope: Scope, vector: Sequence[float], k: int, where: Mapping[str, Any] | None = None
    ) -> list[Scored]:
        return await asyncio.to_thread(self._search, scope, vector, k, where)

    def _search(
        self, scope: Scope, vector: Sequence[float], k: int, where: Mapping[str, Any] | None
    ) -> list[Scored]:
        query = checks.unit_query(scope, vector)
        with self._lock:
            held = self._held()
            rows = self._rows
            size = rows.size if rows is not None else 0
        checks.fits(scope, held, int(query.shape[0]), query=True)
        if rows is None or size == 0 or k <= 0:
            return []
        # Rows [0, size) of this snapshot never change: writers append past them or copy.
        matrix = rows.buffer[:size]
        documents = rows.documents
        # einsum, not `@`: BLAS would spread one matrix-vector product over its own threads, which
        # on a small machine cost more than they gain and collide with concurrent searches.
        scores = np.einsum("ij,j->i", matrix, query)
        if where:
            keep = np.fromiter(
                (filters.matches(documents[row].metadata, where) for row in range(size)), bool, size
            )
            scores = np.where(keep, scores, -np.inf).astype(np.float32)
            k = min(k, int(keep.sum()))
        found = similarity.best(scores, k)
        return [Scored(documents[row], float(scores[row]), matrix[row].tolist()) for row in found.tolist()]

    async def count(self, scope: Scope) -> int:
        # No lock: an add may hold it for a while, and this runs on the event loop. Reading the
        # rows and their length are single steps.
        rows = self._rows
        return rows.size if rows is not None else 0

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            self._rows = None
            self._row_of = {}

    def _held(self) -> Held | None:
        if self._rows is None or self._rows.size == 0:
            return None
        return Held(int(self._rows.buffer.shape[1]), self._embedding_key)
