"""Stand-ins for the nodes a vector store connects to: embeddings with known vectors, a loader."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from streamwise.engine.retrieval import Document


@dataclass
class TableEmbeddings:
    """Vectors from a table, by text; any other text gets a fixed pseudo-random vector.

    Counts its calls, so tests can tell that building a node embedded nothing.
    """

    table: Mapping[str, Sequence[float]] = field(default_factory=dict)
    dimension: int = 3
    name: str = "test:table"
    calls: int = 0

    @property
    def key(self) -> str:
        return self.name

    def vector(self, text: str) -> list[float]:
        if text in self.table:
            return [float(x) for x in self.table[text]]
        digest = hashlib.sha256(text.encode()).digest()
        return [(byte - 127.5) / 127.5 for byte in digest[: self.dimension]]

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        return [self.vector(text) for text in texts]

    async def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        return self.vector(text)


@dataclass
class ListLoader:
    """A document loader node giving fixed documents."""

    documents: list[Document]

    def load(self) -> Iterator[Document]:
        return iter(self.documents)
