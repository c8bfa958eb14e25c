"""`embeddedVectorStore` (Embedded Vector Store (SQLite)): Streamwise's default, persistent store.

Flowise has no such node. Every node's entries live in one SQLite file in the data directory
(`vectors/vectors.sqlite3`, searched exactly with sqlite-vec), each chatflow's node in a namespace
of its own, so the store survives restarts and needs no server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamwise.engine.retrieval import RetrievalContext
from streamwise.errors import NodeConfigError
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
from streamwise.vectors.namespaces import flow_namespace
from streamwise.vectors.sqlite import FILE_NAME, SqliteNamespace, SqliteVectorDatabase

FILTER_INPUT = "metadataFilter"


class EmbeddedVectorStoreNode(VectorStoreNode):
    label = "Embedded Vector Store"

    def backend(self, context: RetrievalContext) -> SqliteNamespace:
        if self.services.data_dir is None:
            raise NodeConfigError(
                f"Node {self.node_id}: the server has no data directory to keep vectors in "
                "(STREAMWISE_DATA_DIR)",
                self.node_id,
            )
        path = self.services.data_dir / "vectors" / FILE_NAME
        database = shared(
            self.services, ("vectors.sqlite", path), SqliteVectorDatabase, lambda: SqliteVectorDatabase(path)
        )
        return database.namespace(flow_namespace(context, self.node_id))


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> EmbeddedVectorStoreNode:
    return EmbeddedVectorStoreNode(
        node_id,
        services,
        document_loaders(node_id, node_inputs),
        embeddings_of(node_id, node_inputs),
        search_settings(node_id, node_inputs, FILTER_INPUT),
    )


SPEC = NodeSpec(
    name="embeddedVectorStore",
    label="Embedded Vector Store (SQLite)",
    category="Vector Stores",
    build=build,
    # recordManager is read by the upsert (engine/indexing.py), not by the node.
    honoured=("document", "embeddings", "recordManager", *RETRIEVER_INPUTS, FILTER_INPUT),
    ignored=(),
)
