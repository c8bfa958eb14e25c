"""Flowise "memoryVectorStore" (In-Memory Vector Store): exact search in numpy, lost on restart.

Each node of each chatflow has its own namespace, kept for the life of the server process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamwise.engine.retrieval import RetrievalContext
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec
from streamwise.nodes.vectorstores.base import (
    RETRIEVER_INPUTS,
    VectorStoreNode,
    document_loaders,
    embeddings_of,
    search_settings,
    shared,
)
from streamwise.vectors.memory import MemoryBackend
from streamwise.vectors.namespaces import flow_namespace

FILTER_INPUT = "metadataFilter"  # Streamwise's: Flowise's node has no filter


class MemoryVectorStoreNode(VectorStoreNode):
    label = "In-Memory Vector Store"

    def backend(self, context: RetrievalContext) -> MemoryBackend:
        key = ("vectors.memory", flow_namespace(context, self.node_id))
        return shared(self.services, key, MemoryBackend, MemoryBackend)


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> MemoryVectorStoreNode:
    return MemoryVectorStoreNode(
        node_id,
        services,
        document_loaders(node_id, node_inputs),
        embeddings_of(node_id, node_inputs),
        search_settings(node_id, node_inputs, FILTER_INPUT),
    )


SPEC = NodeSpec(
    name="memoryVectorStore",
    label="In-Memory Vector Store",
    category="Vector Stores",
    build=build,
    honoured=("document", "embeddings", *RETRIEVER_INPUTS, FILTER_INPUT),
    ignored=(),
)
