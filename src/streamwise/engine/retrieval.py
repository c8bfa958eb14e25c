"""What retrieval needs from the outside world, as protocols: documents in, vectors, stores, retrievers.

Loader, splitter and embedding nodes implement these; vector store backends implement `VectorStore`;
a vector store node is a `Retriever` for the chains and an `Indexable` for the upsert route. The
engine (`engine/ingest.py`, the chains) depends on these shapes only.

Conventions every implementation keeps:
- scores are similarities, higher is better (cosine for normalised vectors, in [-1, 1]);
- blocking work (parsing a PDF, running a local model, a synchronous index) never runs on the event
  loop: loaders and splitters are called from a worker thread, async methods do their own offloading;
- a failure the user can act on is a `streamwise.errors.BadRequest` naming the file or node (an
  unsupported or corrupt file) or a `ModelError`-style error for a remote service that is down.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Document:
    """A passage: its text and where it came from (`source`, and a location such as page or line)."""

    page_content: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Flowise's shape: `{"pageContent": ..., "metadata": {...}}`."""
        return {"pageContent": self.page_content, "metadata": dict(self.metadata)}


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file the server itself hands to a loader node: an upload saved to disk, or a file named on
    `streamwise ingest`'s command line. Never built from request JSON, so a request cannot make a
    loader read an arbitrary path; requests pass files as Flowise's data URLs instead."""

    name: str
    path: Path
    media_type: str | None = None


@dataclass(frozen=True, slots=True)
class Scored:
    """A document a search found, with its similarity and (when the store keeps it) its vector."""

    document: Document
    score: float
    vector: Sequence[float] | None = None


@runtime_checkable
class DocumentLoader(Protocol):
    """A loader node instance. `load` may block (files, parsing): callers run it in a worker thread.

    Every document's metadata has `source` (the file name, or what the user gave), plus a location
    where the format has one (`page` for PDF, `line` for text, `row` for CSV).
    """

    def load(self) -> Iterator[Document]: ...


@runtime_checkable
class TextSplitter(Protocol):
    """A splitter node instance: documents → chunks, metadata kept (and extended with `loc`)."""

    def split(self, documents: Iterable[Document]) -> Iterator[Document]: ...


@runtime_checkable
class Embeddings(Protocol):
    """An embeddings node instance.

    `key` names the model (e.g. "openai:text-embedding-3-small", "local:multilingual-e5-small"), so a
    store filled by one model is never searched with another's vectors.
    """

    @property
    def key(self) -> str: ...

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def embed_query(self, text: str) -> list[float]: ...


class VectorStore(Protocol):
    """A vector store backend: documents and their vectors under string ids, in one namespace.

    - `add` with an id that exists replaces that entry; all of one call is added or none of it;
    - `delete` ignores ids it does not have;
    - `search` returns at most `k` entries, best first; `where` keeps only documents whose metadata
      holds every given key with the given value;
    - a store with a dimension refuses vectors of another one (`BadRequest` naming it);
    - a persistent store finds its entries again when reopened.
    """

    async def add(
        self, ids: Sequence[str], documents: Sequence[Document], vectors: Sequence[Sequence[float]]
    ) -> None: ...

    async def delete(self, ids: Sequence[str]) -> None: ...

    async def search(
        self, vector: Sequence[float], k: int, where: Mapping[str, Any] | None = None
    ) -> list[Scored]: ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RetrievalContext:
    """Which chatflow a retrieval or an upsert is for (a vector store node's namespace needs it)."""

    chatflow_id: str


@runtime_checkable
class Retriever(Protocol):
    """What a retrieval chain or tool asks: passages relevant to a query."""

    async def retrieve(self, query: str, context: RetrievalContext) -> list[Document]: ...


@runtime_checkable
class Indexable(Protocol):
    """A vector store node as the upsert route sees it: where documents come from and go to."""

    @property
    def node_id(self) -> str: ...

    @property
    def loaders(self) -> Sequence[DocumentLoader]: ...

    @property
    def embeddings(self) -> Embeddings: ...

    async def open_store(self, context: RetrievalContext) -> VectorStore: ...
