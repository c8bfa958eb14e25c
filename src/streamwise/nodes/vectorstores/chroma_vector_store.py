"""Flowise "chroma" (Chroma): a collection on a Chroma server, over HTTP.

`chromaURL` (default `http://localhost:8000`) and `collectionName` decide where documents go and
come from, so no request may override them. Every call to the server has a deadline (the model
deadline, at most 30 s): a server that is down or silent fails the node with a 502 or 504, and never
hangs the chat. A `chromaApi` credential is not used: the connection to Chroma carries no key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamwise.engine.retrieval import DocumentLoader, Embeddings, RetrievalContext
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec
from streamwise.nodes.vectorstores.base import (
    RETRIEVER_INPUTS,
    SearchSettings,
    VectorStoreNode,
    document_loaders,
    embeddings_of,
    search_settings,
    shared,
)
from streamwise.vectors.chroma import DEFAULT_URL, ChromaAddress, ChromaBackend, ChromaConnection, parse_url
from streamwise.vectors.namespaces import valid_collection

FILTER_INPUT = "chromaMetadataFilter"
MAX_TIMEOUT = 30.0  # seconds: a vector search should not wait as long as a model may


class ChromaVectorStoreNode(VectorStoreNode):
    label = "Chroma"

    def __init__(
        self,
        node_id: str,
        services: NodeServices,
        loaders: tuple[DocumentLoader, ...],
        embeddings: Embeddings,
        settings: SearchSettings,
        address: ChromaAddress,
        collection: str,
    ) -> None:
        super().__init__(node_id, services, loaders, embeddings, settings)
        self.address = address
        self.collection = collection

    def backend(self, context: RetrievalContext) -> ChromaBackend:
        timeout = min(self.services.model_timeout_seconds, MAX_TIMEOUT)
        connection = shared(
            self.services,
            ("vectors.chroma", self.address, timeout),
            ChromaConnection,
            lambda: ChromaConnection(self.address, timeout=timeout),
        )
        return shared(
            self.services,
            ("vectors.chroma", self.address, timeout, self.collection),
            ChromaBackend,
            lambda: ChromaBackend(connection, self.collection),
        )


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> ChromaVectorStoreNode:
    collection = (inputs.text(node_inputs, "collectionName") or "").strip()
    if not valid_collection(collection):
        raise NodeConfigError(
            f"Node {node_id}: input 'collectionName' must be 3 to 512 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit",
            node_id,
        )
    url = (inputs.text(node_inputs, "chromaURL") or "").strip() or DEFAULT_URL
    address = parse_url(url)
    if address is None:
        raise NodeConfigError(
            f"Node {node_id}: input 'chromaURL' must be a URL such as http://localhost:8000", node_id
        )
    return ChromaVectorStoreNode(
        node_id,
        services,
        document_loaders(node_id, node_inputs),
        embeddings_of(node_id, node_inputs),
        search_settings(node_id, node_inputs, FILTER_INPUT),
        address,
        collection,
    )


SPEC = NodeSpec(
    name="chroma",
    label="Chroma",
    category="Vector Stores",
    build=build,
    protected=frozenset({"chromaURL", "collectionName"}),
    # recordManager is read by the upsert (engine/indexing.py), not by the node.
    honoured=(
        "document",
        "embeddings",
        "recordManager",
        "collectionName",
        "chromaURL",
        FILTER_INPUT,
        *RETRIEVER_INPUTS,
    ),
    ignored=("credential",),
)
