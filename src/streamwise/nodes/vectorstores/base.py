"""What every vector store node shares: its inputs, and being a `Retriever` and an `Indexable`.

A node instance is cheap and touches nothing when built (chatflows are built at save time only to
check them): its backend is opened at the first retrieval or upsert, and kept in `NodeServices.cache`
so that every build of the chatflow, and every request, uses the same one. Flowise gives a vector
store node two outputs, "retriever" and "vectorStore"; here both are this one instance.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from streamwise.engine.retrieval import (
    Document,
    DocumentLoader,
    Embeddings,
    RetrievalContext,
    Scored,
    VectorStore,
)
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs
from streamwise.nodes.services import NodeServices
from streamwise.vectors import filters
from streamwise.vectors.scope import Backend, Scope, ScopedStore
from streamwise.vectors.similarity import maximal_marginal_relevance

B = TypeVar("B")

SearchType = Literal["similarity", "mmr"]
# The retriever inputs every node here honours (Flowise's names for its MMR inputs; `scoreThreshold`
# is Streamwise's own), besides the node's own metadata filter input.
RETRIEVER_INPUTS = ("topK", "searchType", "fetchK", "lambda", "scoreThreshold")


@dataclass(frozen=True)
class SearchSettings:
    top_k: int = 4
    search_type: SearchType = "similarity"
    fetch_k: int = 20  # candidates MMR chooses from
    lambda_mult: float = 0.5  # 1: relevance only; 0: diversity only
    where: dict[str, filters.Scalar] | None = None
    score_threshold: float | None = None  # keep only passages at least this similar to the query


def search_settings(node_id: str, node_inputs: Mapping[str, Any], filter_input: str) -> SearchSettings:
    defaults = SearchSettings()
    top_k = inputs.integer(node_inputs, "topK", node_id, defaults.top_k)
    fetch_k = inputs.integer(node_inputs, "fetchK", node_id, defaults.fetch_k)
    lambda_mult = inputs.number(node_inputs, "lambda", node_id, defaults.lambda_mult)
    threshold = inputs.number(node_inputs, "scoreThreshold", node_id)
    search_type = inputs.text(node_inputs, "searchType", defaults.search_type) or defaults.search_type
    assert top_k is not None and fetch_k is not None and lambda_mult is not None
    problems = []
    if top_k < 1:
        problems.append(f"topK must be at least 1, got {top_k}")
    if fetch_k < 1:
        problems.append(f"fetchK must be at least 1, got {fetch_k}")
    if not 0 <= lambda_mult <= 1:
        problems.append(f"lambda must be between 0 and 1, got {lambda_mult:g}")
    if threshold is not None and not -1 <= threshold <= 1:
        problems.append(f"scoreThreshold must be between -1 and 1, got {threshold:g}")
    if search_type not in ("similarity", "mmr"):
        problems.append(f"searchType must be 'similarity' or 'mmr', got {search_type!r}")
    try:
        where = filters.parse(node_inputs.get(filter_input))
    except filters.FilterError as exc:
        problems.append(f"{filter_input} {exc}")
        where = None
    if problems:
        raise NodeConfigError(f"Node {node_id}: " + "; ".join(problems), node_id)
    kind: SearchType = "mmr" if search_type == "mmr" else "similarity"
    return SearchSettings(top_k, kind, fetch_k, lambda_mult, where, threshold)


def document_loaders(node_id: str, node_inputs: Mapping[str, Any]) -> tuple[DocumentLoader, ...]:
    """Flowise's `document` list anchor: loader nodes (none is fine: a store may be filled already)."""
    raw = node_inputs.get("document")
    items = raw if isinstance(raw, list | tuple) else [raw]
    flat = [inner for item in items for inner in (item if isinstance(item, list | tuple) else [item])]
    loaders = [item for item in flat if item is not None and item != ""]
    for item in loaders:
        if not isinstance(item, DocumentLoader):
            raise NodeConfigError(
                f"Node {node_id}: input 'document' must be document loader nodes, got {type(item).__name__}",
                node_id,
            )
    return tuple(loaders)


def embeddings_of(node_id: str, node_inputs: Mapping[str, Any]) -> Embeddings:
    found = inputs.instance(node_inputs, "embeddings", node_id, Embeddings, required=True)
    assert found is not None
    return found


def shared(services: NodeServices, key: tuple[Any, ...], kind: type[B], make: Callable[[], B]) -> B:
    """The process-wide resource under `key` in `services.cache`, made on first request.

    Backends do no I/O when made (they open files or connect at their first call), so this needs no
    lock: between the look-up and the store there is no await.
    """
    found = services.cache.get(key)
    if isinstance(found, kind):
        return found
    made = make()
    services.cache[key] = made
    return made


class VectorStoreNode(ABC):
    """A vector store node: a `Retriever` for chains and an `Indexable` for upserts."""

    label = "Vector Store"

    def __init__(
        self,
        node_id: str,
        services: NodeServices,
        loaders: Sequence[DocumentLoader],
        embeddings: Embeddings,
        settings: SearchSettings,
    ) -> None:
        self._node_id = node_id
        self.services = services
        self._loaders = tuple(loaders)
        self._embeddings = embeddings
        self.settings = settings

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def loaders(self) -> Sequence[DocumentLoader]:
        return self._loaders

    @property
    def embeddings(self) -> Embeddings:
        return self._embeddings

    @property
    def who(self) -> str:
        return f"Node {self._node_id} ({self.label})"

    @abstractmethod
    def backend(self, context: RetrievalContext) -> Backend:
        """This node's backend for `context` (taken from, or put into, `services.cache`)."""

    async def open_store(self, context: RetrievalContext) -> VectorStore:
        return ScopedStore(self.backend(context), Scope(self.who, self._embeddings.key))

    async def search(self, query: str, context: RetrievalContext) -> list[Scored]:
        """The passages for `query`, with their scores, as the node's settings choose them."""
        settings = self.settings
        store = await self.open_store(context)
        vector = await self._embeddings.embed_query(query)
        mmr = settings.search_type == "mmr"
        found = await store.search(vector, settings.fetch_k if mmr else settings.top_k, settings.where)
        if settings.score_threshold is not None:
            found = [item for item in found if item.score >= settings.score_threshold]
        if not mmr:
            return found
        if any(item.vector is None for item in found):  # a store that keeps no vectors: by score
            return found[: settings.top_k]
        chosen = maximal_marginal_relevance(
            vector, [list(item.vector or ()) for item in found], settings.top_k, settings.lambda_mult
        )
        return [found[at] for at in chosen]

    async def retrieve(self, query: str, context: RetrievalContext) -> list[Document]:
        return [item.document for item in await self.search(query, context)]
