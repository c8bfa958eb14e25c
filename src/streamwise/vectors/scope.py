"""A backend as one node sees it: the `VectorStore` it hands out, bound to who is asking.

Backends are shared: two nodes may name the same Faiss folder or Chroma collection, and one SQLite
file holds every embedded namespace. What differs per node is who to name in a message and which
embeddings fill and search the store; `Scope` carries both into every call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streamwise.engine.retrieval import Document, Scored


@dataclass(frozen=True, slots=True)
class Scope:
    who: str  # how messages name the asker: "Node faiss_0 (Faiss)"
    # The embeddings model that fills and searches the store (`Embeddings.key`); None: not checked.
    embedding_key: str | None = None


class Backend(Protocol):
    """What every backend implements: `VectorStore`'s operations, with the asker's scope.

    A namespace remembers its dimension and embedding key while it holds entries; an empty one takes
    whatever comes next.
    """

    async def add(
        self,
        scope: Scope,
        ids: Sequence[str],
        documents: Sequence[Document],
        vectors: Sequence[Sequence[float]],
    ) -> None: ...

    async def delete(self, scope: Scope, ids: Sequence[str]) -> None: ...

    async def search(
        self, scope: Scope, vector: Sequence[float], k: int, where: Mapping[str, Any] | None = None
    ) -> list[Scored]: ...

    async def count(self, scope: Scope) -> int: ...

    async def close(self) -> None: ...


class ScopedStore:
    """A `VectorStore`: one backend, one scope.

    `close` closes the backend only when this view owns it (a test, a command-line tool); a node's
    view never does, since the backend is shared and `NodeServices.aclose` closes it.
    """

    def __init__(self, backend: Backend, scope: Scope, *, owns: bool = False) -> None:
        self.backend = backend
        self.scope = scope
        self.owns = owns

    async def add(
        self, ids: Sequence[str], documents: Sequence[Document], vectors: Sequence[Sequence[float]]
    ) -> None:
        await self.backend.add(self.scope, ids, documents, vectors)

    async def delete(self, ids: Sequence[str]) -> None:
        await self.backend.delete(self.scope, ids)

    async def search(
        self, vector: Sequence[float], k: int, where: Mapping[str, Any] | None = None
    ) -> list[Scored]:
        return await self.backend.search(self.scope, vector, k, where)

    async def count(self) -> int:
        return await self.backend.count(self.scope)

    async def close(self) -> None:
        if self.owns:
            await self.backend.close()
