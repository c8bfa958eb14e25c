"""Upserting documents into a vector store: load, split, skip what is known, embed, add, clean up.

Record keeping is always on. Every chunk is keyed by a hash of its text and metadata, which is also
its id in the store, so upserting the same content again adds nothing. The record manager's cleanup
mode (Flowise's `none`, `incremental`, `full`) decides what a re-upsert deletes:
- `none`: nothing;
- `incremental`: the chunks of the sources in this upsert that this upsert did not bring again
  (a changed file's old chunks);
- `full`: every chunk this upsert did not bring again.

An upsert that fails part-way leaves the store as it was: the chunks it added are deleted again and
no record is written. Documents are taken from the loaders a batch at a time, in a worker thread, so
a big file is never held whole and the event loop never waits for parsing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import IO, Any, Literal, Protocol

import orjson

from streamwise.engine.retrieval import Document, DocumentLoader, Indexable, RetrievalContext, VectorStore
from streamwise.errors import BadRequest

logger = logging.getLogger("streamwise.ingest")

Cleanup = Literal["none", "incremental", "full"]
CLEANUP_MODES: tuple[Cleanup, ...] = ("none", "incremental", "full")
BATCH = 64  # chunks embedded (and added) together
IN_FLIGHT = 4  # batches being embedded and added at once
SPILL_BYTES = 1 << 20  # the added chunks' JSON kept in memory up to this, then in a temporary file


@dataclass(frozen=True, slots=True)
class Record:
    key: str
    source: str | None


class RecordKeeper(Protocol):
    """Where upsert records live (see `streamwise.store.records`)."""

    async def known(self, namespace: str, keys: Sequence[str]) -> set[str]: ...

    async def listed(self, namespace: str, sources: Sequence[str] | None = None) -> list[Record]: ...

    async def commit(self, namespace: str, added: Sequence[Record], removed: Sequence[str]) -> None: ...


@dataclass
class Progress:
    """How far an upsert got: passed to the progress callback after every batch."""

    chunks: int = 0  # chunks read
    added: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.perf_counter)

    @property
    def rate(self) -> float:
        """Chunks per second so far."""
        elapsed = time.perf_counter() - self.started
        return self.chunks / elapsed if elapsed > 0 else 0.0


class AddedDocs:
    """The chunks an upsert added, for its answer (Flowise's `addedDocs`), without holding them.

    Flowise answers an upsert with every chunk it added; for a big file that answer is as big as the
    file. Each batch is encoded as it is added, kept in memory up to a megabyte and in a temporary
    file after that, and `chunks` reads the JSON back for the response a piece at a time.
    """

    def __init__(self) -> None:
        # Open for the result's life, closed by `close` (the response's background task).
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPILL_BYTES)  # noqa: SIM115
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def extend(self, documents: Iterable[Document]) -> None:
        write = self._file.write
        for document in documents:
            if self._count:
                write(b",")
            write(_encoded(document.to_json()))
            self._count += 1

    def absorb(self, other: AddedDocs) -> None:
        """Append what `other` holds (and close it)."""
        if len(other):
            if self._count:
                self._file.write(b",")
            for piece in other.chunks():
                self._file.write(piece)
            self._count += len(other)
        other.close()

    def chunks(self, size: int = SPILL_BYTES) -> Iterator[bytes]:
        """The documents' JSON, comma-separated (no brackets), in pieces of at most `size` bytes."""
        self._file.seek(0)
        while piece := self._file.read(size):
            yield piece
        self._file.seek(0, 2)

    def documents(self) -> list[dict[str, Any]]:
        """Everything, decoded (for tests and small answers)."""
        return list(orjson.loads(b"[" + b"".join(self.chunks()) + b"]"))

    def close(self) -> None:
        self._file.close()


def _encoded(value: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(value, default=str)
    except orjson.JSONEncodeError:  # e.g. a lone surrogate in a loader's metadata
        return json.dumps(value, default=str).encode()


@dataclass
class UpsertResult:
    added: AddedDocs = field(default_factory=AddedDocs)
    skipped: int = 0
    deleted: int = 0

    def head(self) -> dict[str, int]:
        """Flowise's answer to an upsert, but for `addedDocs`."""
        return {
            "numAdded": len(self.added),
            "numUpdated": 0,  # a changed chunk has another key: it is added, and its old one deleted
            "numSkipped": self.skipped,
            "numDeleted": self.deleted,
        }

    def body(self) -> Iterator[bytes]:
        """Flowise's whole answer as JSON, a piece at a time; `addedDocs` comes last."""
        yield orjson.dumps(self.head())[:-1] + b',"addedDocs":['
        yield from self.added.chunks()
        yield b"]}"

    def to_json(self) -> dict[str, Any]:
        """The whole answer, decoded (for tests and small answers)."""
        return {**self.head(), "addedDocs": self.added.documents()}


def chunk_key(document: Document) -> str:
    """The hash that identifies a chunk: its text and its metadata (as sorted JSON)."""
    meta = json.dumps(document.metadata, sort_keys=True, default=str, ensure_ascii=False)
    digest = hashlib.sha256()
    digest.update(document.page_content.encode("utf-8", "surrogatepass"))
    digest.update(b"\x00")
    digest.update(meta.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:48]


def namespace_of(context: RetrievalContext, node_id: str) -> str:
    return f"{context.chatflow_id}/{node_id}"


def documents_of(loaders: Sequence[DocumentLoader]) -> Iterator[Document]:
    return chain.from_iterable(loader.load() for loader in loaders)


async def batches(documents: Iterator[Document], size: int = BATCH) -> AsyncIterator[list[Document]]:
    """Take `size` documents at a time from `documents`, each take in a worker thread."""
    while True:
        batch = await asyncio.to_thread(lambda: list(islice(documents, size)))
        if not batch:
            return
        yield batch


async def upsert(
    target: Indexable,
    context: RetrievalContext,
    records: RecordKeeper,
    *,
    cleanup: Cleanup = "none",
    source_key: str = "source",
    documents: Iterable[Document] | None = None,
    progress: Callable[[Progress], None] | None = None,
    namespace: str | None = None,
) -> UpsertResult:
    """Index `documents` (default: everything the node's loaders give) into the node's store.

    `namespace` names the records (a record manager's own); by default, the chatflow and the node."""
    if cleanup not in CLEANUP_MODES:
        raise BadRequest(f"cleanup must be one of {', '.join(CLEANUP_MODES)}, got {cleanup!r}")
    namespace = namespace or namespace_of(context, target.node_id)
    store = await target.open_store(context)
    source_docs = iter(documents) if documents is not None else documents_of(target.loaders)
    result = UpsertResult()
    state = Progress()
    added: list[Record] = []
    seen: set[str] = set()
    sources: set[str] = set()
    # Batches embedded and added while the next ones are read, looked up and sent: the embedder
    # (a model server, or the local model's thread) is never left waiting for our own work.
    in_flight: deque[tuple[asyncio.Task[None], list[Document]]] = deque()

    async def settle_oldest() -> None:
        task, documents = in_flight[0]
        await task
        in_flight.popleft()
        result.added.extend(documents)
        state.added = len(result.added)
        if progress is not None:
            progress(state)

    try:
        async for batch in batches(source_docs):
            keyed = [(chunk_key(document), document) for document in batch]
            state.chunks += len(keyed)
            for _, document in keyed:
                source = document.metadata.get(source_key)
                if source is not None:
                    sources.add(str(source))
            known = await records.known(namespace, [key for key, _ in keyed])
            fresh: dict[str, Document] = {}
            for key, document in keyed:
                if key in known or key in seen:
                    result.skipped += 1
                else:
                    fresh[key] = document
                seen.add(key)
            state.skipped = result.skipped
            if fresh:
                added.extend(Record(key, _source(document, source_key)) for key, document in fresh.items())
                in_flight.append((asyncio.ensure_future(_add(target, store, fresh)), list(fresh.values())))
            elif progress is not None and not in_flight:
                progress(state)
            while len(in_flight) >= IN_FLIGHT:
                await settle_oldest()
        while in_flight:
            await settle_oldest()
        stale = await _stale(records, namespace, cleanup, seen, sorted(sources))
        await records.commit(namespace, added, stale)
    except BaseException:
        for task, _ in in_flight:
            task.cancel()
        await asyncio.gather(*(task for task, _ in in_flight), return_exceptions=True)
        if added:
            await _undo(store, [record.key for record in added])
        raise
    if stale:
        await store.delete(stale)
        result.deleted = len(stale)
    return result


async def _add(target: Indexable, store: VectorStore, fresh: dict[str, Document]) -> None:
    texts = [document.page_content for document in fresh.values()]
    vectors = await target.embeddings.embed_documents(texts)
    if len(vectors) != len(texts):
        raise BadRequest(
            f"Node {target.node_id}: the embeddings gave {len(vectors)} vectors for {len(texts)} texts"
        )
    await store.add(list(fresh), list(fresh.values()), vectors)


async def _stale(
    records: RecordKeeper, namespace: str, cleanup: Cleanup, seen: set[str], sources: Sequence[str]
) -> list[str]:
    if cleanup == "none":
        return []
    listed = await records.listed(namespace, None if cleanup == "full" else sources)
    return [record.key for record in listed if record.key not in seen]


async def _undo(store: VectorStore, keys: Sequence[str]) -> None:
    """Take back what a failed upsert added; shielded, so a cancelled upsert still cleans up."""
    try:
        await asyncio.shield(store.delete(keys))
    except Exception as exc:  # the failure that got us here is what the caller must see
        logger.error("an upsert failed and its %d new chunks could not be removed: %r", len(keys), exc)


def _source(document: Document, source_key: str) -> str | None:
    value = document.metadata.get(source_key)
    return None if value is None else str(value)
