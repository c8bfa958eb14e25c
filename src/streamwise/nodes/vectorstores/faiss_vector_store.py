"""Flowise "faiss" (Faiss): a Faiss index and its documents in a folder, named by `basePath`.

The folder must lie inside the Faiss directory, `faiss/` in the data directory: a relative name is
taken inside it, an absolute path must point inside it, and symbolic links are resolved first.
Whatever the reason a name is refused (outside, `~`, a link out, odd characters), the refusal is the
same sentence, so a request cannot learn anything about the server's disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
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
from streamwise.vectors.faiss_folder import FaissFolderBackend
from streamwise.vectors.namespaces import confined_folder

FILTER_INPUT = "metadataFilter"  # Streamwise's: Flowise's node has no filter


class FaissVectorStoreNode(VectorStoreNode):
    label = "Faiss"

    def __init__(
        self,
        node_id: str,
        services: NodeServices,
        loaders: tuple[DocumentLoader, ...],
        embeddings: Embeddings,
        settings: SearchSettings,
        base_path: str,
    ) -> None:
        super().__init__(node_id, services, loaders, embeddings, settings)
        self.base_path = base_path

    def backend(self, context: RetrievalContext) -> FaissFolderBackend:
        folder = folder_of(self.node_id, self.base_path, self.services)
        return shared(
            self.services, ("vectors.faiss", folder), FaissFolderBackend, lambda: FaissFolderBackend(folder)
        )


def faiss_root(services: NodeServices) -> Path | None:
    return None if services.data_dir is None else services.data_dir / "faiss"


def folder_of(node_id: str, base_path: str, services: NodeServices) -> Path:
    """The folder `basePath` names inside the Faiss directory, or the one refusal for every reason."""
    root = faiss_root(services)
    folder = None if root is None else confined_folder(base_path, root)
    if folder is None:
        raise NodeConfigError(
            f"Node {node_id}: basePath must name a folder inside the server's Faiss directory "
            "(faiss/ in the data directory)",
            node_id,
            detail=f"basePath {base_path!r}; Faiss directory {root}",
        )
    return folder


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> FaissVectorStoreNode:
    base_path = (inputs.text(node_inputs, "basePath") or "").strip()
    if not base_path:
        raise NodeConfigError(f"Node {node_id}: input 'basePath' (the Faiss folder) is required", node_id)
    if services.data_dir is not None:
        folder_of(node_id, base_path, services)  # refuse at save time; it only reads the disk
    return FaissVectorStoreNode(
        node_id,
        services,
        document_loaders(node_id, node_inputs),
        embeddings_of(node_id, node_inputs),
        search_settings(node_id, node_inputs, FILTER_INPUT),
        base_path,
    )


SPEC = NodeSpec(
    name="faiss",
    label="Faiss",
    category="Vector Stores",
    build=build,
    # basePath picks files on the server: no request may change it (spec.ALWAYS_PROTECTED).
    honoured=("document", "embeddings", "basePath", *RETRIEVER_INPUTS, FILTER_INPUT),
    ignored=(),
)
