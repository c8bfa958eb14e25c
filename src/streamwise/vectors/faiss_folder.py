"""A Faiss index in a folder, with its documents beside it (Flowise's Faiss node).

The folder holds `faiss.index` (an `IndexIDMap2` over an exact `IndexFlatIP`; vectors are stored unit
length, so inner product is cosine similarity) and `docstore.json` (each entry's id, Faiss label,
text and metadata, and the folder's dimension and embeddings key). Nothing is read until the first
call; a folder that does not exist yet is an empty store, created by the first add.

Each add or delete saves both files, each written to a temporary file and renamed over the old one.
Should the process die between the two renames, loading keeps the entries both files agree on: an
interrupted add is then undone and an interrupted delete completed. A file that cannot be read
(damaged, or not written by Streamwise) is refused with one sentence naming the node.

Faiss calls block and an index is not safe for concurrent use: every call runs in a worker thread,
under the folder's lock. Faiss runs single-threaded here: one query over 100,000 vectors takes about
12 ms on one core, while its OpenMP threads, on a small machine that is busy with other requests,
made the same query take 15 to 50 ms.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from streamwise.engine.retrieval import Document, Scored
from streamwise.vectors import checks, filters
from streamwise.vectors.checks import Batch, Held
from streamwise.vectors.errors import StoreRefusal
from streamwise.vectors.scope import Scope

logger = logging.getLogger("streamwise.vectors")

INDEX_FILE = "faiss.index"
DOCSTORE_FILE = "docstore.json"
FORMAT = "streamwise-faiss"


@dataclass(frozen=True, slots=True)
class _Entry:
    label: int
    document: Document


@dataclass
class _State:
    index: Any  # faiss.IndexIDMap2
    entries: dict[str, _Entry]
    embedding_key: str | None
    next_label: int
    by_label: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_label = {entry.label: entry_id for entry_id, entry in self.entries.items()}

    @property
    def dimension(self) -> int:
        return int(self.index.d)


class FaissFolderBackend:
    """One folder: a `Backend`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._state: _State | None = None
        self._loaded = False

    async def add(
        self,
        scope: Scope,
        ids: Sequence[str],
        documents: Sequence[Document],
        vectors: Sequence[Sequence[float]],
    ) -> None:
        batch = checks.batch(scope, ids, documents, vectors)
        if batch.ids:
            await asyncio.to_thread(self._add, scope, batch)

    def _add(self, scope: Scope, batch: Batch) -> None:
        with self._lock:
            state = self._load(scope)
            held = None if state is None or not state.entries else Held(state.dimension, state.embedding_key)
            checks.fits(scope, held, batch.dimension)
            if state is None or not state.entries:
                state = _State(
                    faiss.IndexIDMap2(faiss.IndexFlatIP(batch.dimension)), {}, scope.embedding_key, 0
                )
            labels: list[int] = []
            replaced: list[int] = []
            for entry_id in batch.ids:
                if entry_id in state.entries:
                    # A replaced entry keeps its label, so the two files can never disagree about it.
                    labels.append(state.entries[entry_id].label)
                    replaced.append(labels[-1])
                else:
                    labels.append(state.next_label)
                    state.next_label += 1
            if replaced:
                state.index.remove_ids(np.asarray(replaced, dtype=np.int64))
            state.index.add_with_ids(batch.vectors, np.asarray(labels, dtype=np.int64))
            for entry_id, label, document in zip(batch.ids, labels, batch.documents, strict=True):
                state.entries[entry_id] = _Entry(label, _as_stored(document))
                state.by_label[label] = entry_id
            self._commit(state)

    async def delete(self, scope: Scope, ids: Sequence[str]) -> None:
        if ids:
            await asyncio.to_thread(self._delete, scope, [str(entry_id) for entry_id in ids])

    def _delete(self, scope: Scope, ids: list[str]) -> None:
        with self._lock:
            state = self._load(scope)
            if state is None:
                return
            gone = [state.entries.pop(entry_id).label for entry_id in set(ids) if entry_id in state.entries]
            if not gone:
                return
            for label in gone:
                del state.by_label[label]
            state.index.remove_ids(np.asarray(gone, dtype=np.int64))
            self._commit(state)

    async def search(
        self, scope: Scope, vector: Sequence[float], k: int, where: Mapping[str, Any] | None = None
    ) -> list[Scored]:
        query = checks.unit_query(scope, vector)
        return await asyncio.to_thread(self._search, scope, query, k, where)

    def _search(
        self, scope: Scope, query: np.ndarray[Any, Any], k: int, where: Mapping[str, Any] | None
    ) -> list[Scored]:
        with self._lock:
            state = self._load(scope)
            if state is None or not state.entries:
                return []
            checks.fits(scope, Held(state.dimension, state.embedding_key), int(query.shape[0]), query=True)
            params = None
            candidates = len(state.entries)
            if where:
                allowed = [
                    e.label for e in state.entries.values() if filters.matches(e.document.metadata, where)
                ]
                if not allowed:
                    return []
                candidates = len(allowed)
                # Kept in a local until the search is done: the parameters do not own it.
                selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
                params = faiss.SearchParameters()
                params.sel = selector
            k = min(k, candidates)
            if k <= 0:
                return []
            scores, labels = state.index.search(query[None, :], k, params=params)
            found = [
                (float(s), int(label)) for s, label in zip(scores[0], labels[0], strict=True) if label >= 0
            ]
            if not found:
                return []
            vectors = state.index.reconstruct_batch(np.asarray([label for _, label in found], dtype=np.int64))
            return [
                Scored(state.entries[state.by_label[label]].document, score, vectors[at].tolist())
                for at, (score, label) in enumerate(found)
            ]

    async def count(self, scope: Scope) -> int:
        return await asyncio.to_thread(self._count, scope)

    def _count(self, scope: Scope) -> int:
        with self._lock:
            state = self._load(scope)
            return 0 if state is None else len(state.entries)

    async def close(self) -> None:
        await asyncio.to_thread(self._close)  # the lock may be held by a save of the whole index

    def _close(self) -> None:
        with self._lock:
            self._state = None
            self._loaded = False

    # -- files --------------------------------------------------------------------------------

    def _commit(self, state: _State) -> None:
        """Save `state`; if saving fails, forget it, so the next call reloads what is on disk."""
        try:
            self._save(state)
        except BaseException:
            self._state, self._loaded = None, False
            raise
        self._state, self._loaded = state, True

    def _save(self, state: _State) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        docstore = {
            "format": FORMAT,
            "version": 1,
            "dimension": state.dimension,
            "embedding_key": state.embedding_key,
            "next_label": state.next_label,
            "entries": [
                [entry_id, entry.label, entry.document.page_content, dict(entry.document.metadata)]
                for entry_id, entry in state.entries.items()
            ],
        }
        _replace(self.folder / INDEX_FILE, faiss.serialize_index(state.index).data)
        _replace(self.folder / DOCSTORE_FILE, json.dumps(docstore, ensure_ascii=False).encode("utf-8"))

    def _load(self, scope: Scope) -> _State | None:
        # OpenMP's thread count belongs to the calling thread, and calls come from any worker
        # thread: set on each call (it costs nothing), before Faiss runs.
        faiss.omp_set_num_threads(1)
        if self._loaded:
            return self._state
        index_path, docstore_path = self.folder / INDEX_FILE, self.folder / DOCSTORE_FILE
        if not index_path.exists() and not docstore_path.exists():
            self._state, self._loaded = None, True
            return None
        try:
            docstore = json.loads(docstore_path.read_bytes())
            if not isinstance(docstore, dict) or docstore.get("format") != FORMAT:
                raise ValueError("docstore.json is not Streamwise's")
            index = faiss.read_index(str(index_path))  # faiss takes str paths only
            if not isinstance(index, faiss.IndexIDMap2) or index.d != int(docstore["dimension"]):
                raise ValueError("faiss.index is not an IndexIDMap2 of the docstore's dimension")
            entries = {
                str(entry_id): _Entry(int(label), Document(str(content), dict(metadata)))
                for entry_id, label, content, metadata in docstore["entries"]
            }
            state = _State(index, entries, docstore.get("embedding_key"), int(docstore["next_label"]))
        except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise StoreRefusal(
                f"{scope.who}: the folder in basePath holds no readable Faiss index "
                "(damaged, or not written by Streamwise)",
                detail=f"{self.folder}: {exc}",
            ) from None
        _reconcile(state, self.folder)
        self._state, self._loaded = state, True
        return state


def _as_stored(document: Document) -> Document:
    """The document as it reads back from docstore.json, so nothing changes across a restart."""
    metadata = json.loads(json.dumps(dict(document.metadata), default=str, ensure_ascii=False))
    return Document(document.page_content, metadata)


def _reconcile(state: _State, folder: Path) -> None:
    """Keep only the entries both files know (see the module's docstring)."""
    in_index = set(faiss.vector_to_array(state.index.id_map).tolist())
    known = {entry.label for entry in state.entries.values()}
    extra = in_index - known
    if extra:
        state.index.remove_ids(np.asarray(sorted(extra), dtype=np.int64))
    missing = known - in_index
    if missing:
        state.entries = {key: e for key, e in state.entries.items() if e.label not in missing}
        state.by_label = {entry.label: entry_id for entry_id, entry in state.entries.items()}
    if extra or missing:
        logger.warning(
            "faiss folder %s: an interrupted save left %d unfiled vectors and %d entries without one; "
            "kept what both files agree on",
            folder,
            len(extra),
            len(missing),
        )


def _replace(path: Path, data: bytes | memoryview) -> None:
    """Write `data` to `path` atomically: a temporary file, flushed to disk, renamed over it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)
