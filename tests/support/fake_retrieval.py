"""Scripted retrieval nodes for tests (not in the package; added with STREAMWISE_NODE_MODULES).

- `fakeTextLoader`: documents from its `texts` input (a JSON list) or from uploaded `.fake` files;
- `fakeEmbeddings`: a hashed bag of words (1024 dimensions, normalised), so texts sharing words are
  close; `failAt` makes the n-th call fail, `delayMs` slows each call;
- `fakeVectorStore`: an in-memory store per (chatflow, node) that is both a retriever (`topK`) and
  an upsert target; `probe` names a record of how many searches and adds it served.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamwise.engine.retrieval import (
    Document,
    DocumentLoader,
    Embeddings,
    RetrievalContext,
    Scored,
    UploadedFile,
    VectorStore,
)
from streamwise.errors import ModelUnavailable, NodeConfigError
from streamwise.nodes import inputs as read
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

DIMENSIONS = 1024  # wide enough that long prompts rarely collide with a passage's words
_WORD = re.compile(r"\w+")


def embed(text: str) -> list[float]:
    vector = [0.0] * DIMENSIONS
    for word in _WORD.findall(text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIMENSIONS] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


@dataclass
class FakeLoader:
    texts: list[str]
    files: list[UploadedFile]

    def load(self) -> Iterator[Document]:
        for index, text in enumerate(self.texts):
            yield Document(text, {"source": f"text-{index}"})
        for file in self.files:
            for line, text in enumerate(file.path.read_text().splitlines(), start=1):
                if text.strip():
                    yield Document(text, {"source": file.name, "line": line})


def build_loader(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> FakeLoader:
    raw = inputs.get("texts") or "[]"
    try:
        texts = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        texts = None
    if not isinstance(texts, list):
        raise NodeConfigError(f"Node {node_id}: input 'texts' must be a JSON list", node_id)
    files = inputs.get("fakeFile") or []
    files = files if isinstance(files, list) else [files]
    if not all(isinstance(file, UploadedFile) for file in files):
        raise NodeConfigError(f"Node {node_id}: input 'fakeFile' takes uploads only", node_id)
    return FakeLoader([str(text) for text in texts], files)


@dataclass
class FakeEmbeddings:
    fail_at: int | None = None
    delay: float = 0.0
    calls: int = 0
    key: str = "fake:bag-of-words"

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise ModelUnavailable("Node fakeEmbeddings_0: the embeddings server failed")
        if self.delay:
            await asyncio.sleep(self.delay)
        return [embed(text) for text in texts]

    async def embed_query(self, text: str) -> list[float]:
        return (await self.embed_documents([text]))[0]


def build_embeddings(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> FakeEmbeddings:
    delay = read.number(inputs, "delayMs", node_id, 0.0) or 0.0
    return FakeEmbeddings(read.integer(inputs, "failAt", node_id), delay / 1000)


@dataclass
class MemoryStore:
    entries: dict[str, tuple[Document, list[float]]] = field(default_factory=dict)
    adds: int = 0
    searches: int = 0

    async def add(
        self, ids: Sequence[str], documents: Sequence[Document], vectors: Sequence[Sequence[float]]
    ) -> None:
        self.adds += 1
        for key, document, vector in zip(ids, documents, vectors, strict=True):
            self.entries[key] = (document, list(vector))

    async def delete(self, ids: Sequence[str]) -> None:
        for key in ids:
            self.entries.pop(key, None)

    async def search(
        self, vector: Sequence[float], k: int, where: Mapping[str, Any] | None = None
    ) -> list[Scored]:
        self.searches += 1
        scored = [
            Scored(document, sum(a * b for a, b in zip(vector, stored, strict=True)), stored)
            for document, stored in self.entries.values()
            if not where or all(document.metadata.get(key) == value for key, value in where.items())
        ]
        return sorted(scored, key=lambda item: -item.score)[:k]

    async def count(self) -> int:
        return len(self.entries)

    async def close(self) -> None:
        pass


@dataclass
class FakeVectorStore:
    node_id: str
    services: NodeServices
    loaders: Sequence[DocumentLoader]
    embeddings: Embeddings
    top_k: int = 4

    async def open_store(self, context: RetrievalContext) -> VectorStore:
        return store_for(self.services, context.chatflow_id, self.node_id)

    async def retrieve(self, query: str, context: RetrievalContext) -> list[Document]:
        store = store_for(self.services, context.chatflow_id, self.node_id)
        found = await store.search(await self.embeddings.embed_query(query), self.top_k)
        return [item.document for item in found]


def store_for(services: NodeServices, chatflow_id: str, node_id: str) -> MemoryStore:
    key = ("fakeVectorStore", chatflow_id, node_id)
    store = services.cache.get(key)
    if not isinstance(store, MemoryStore):
        store = services.cache[key] = MemoryStore()
    return store


def build_store(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> FakeVectorStore:
    loaders = inputs.get("document") or []
    loaders = loaders if isinstance(loaders, list) else [loaders]
    if not all(isinstance(loader, DocumentLoader) for loader in loaders):
        raise NodeConfigError(f"Node {node_id}: input 'document' must be document loaders", node_id)
    embeddings = read.instance(inputs, "embeddings", node_id, Embeddings, required=True)
    assert embeddings is not None
    top_k = read.integer(inputs, "topK", node_id, 4) or 4
    return FakeVectorStore(node_id, services, loaders, embeddings, top_k)


SPECS = (
    NodeSpec(
        name="fakeTextLoader",
        label="Fake Text Loader (tests only)",
        category="Document Loaders",
        build=build_loader,
        honoured=("texts", "fakeFile"),
        file_input="fakeFile",
        file_types=(".fake",),
    ),
    NodeSpec(
        name="fakeEmbeddings",
        label="Fake Embeddings (tests only)",
        category="Embeddings",
        build=build_embeddings,
        honoured=("failAt", "delayMs"),
    ),
    NodeSpec(
        name="fakeVectorStore",
        label="Fake Vector Store (tests only)",
        category="Vector Stores",
        build=build_store,
        honoured=("document", "embeddings", "topK"),
    ),
)
