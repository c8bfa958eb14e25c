"""What a node module declares about itself: its Flowise name, how to build it, and its policy.

A leaf module: node modules import it, and nothing here imports a node. The registry collects specs;
the engine asks the registry (its `NodeCatalog` protocol) about each node's policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from streamwise.nodes.services import NodeServices

Category = Literal[
    "Chat Models",
    "Chains",
    "Agents",
    "Memory",
    "Prompts",
    "Document Loaders",
    "Text Splitters",
    "Embeddings",
    "Vector Stores",
    "Tools",
    "Record Manager",
]
Builder = Callable[[str, Mapping[str, Any], NodeServices], object]

# Inputs no request may override on any node: they pick where requests go and with which secret.
ALWAYS_PROTECTED = frozenset({"credential", "basePath", "basepath", "baseUrl", "baseOptions"})


@dataclass(frozen=True)
class NodeSpec:
    name: str  # Flowise's node name, e.g. "chatOpenAI"
    label: str  # Flowise's label, e.g. "ChatOpenAI"
    category: Category
    build: Builder  # (node_id, resolved inputs, services) -> instance
    honoured: tuple[str, ...] = ()  # inputs this implementation reads (documented in docs/nodes.md)
    ignored: tuple[str, ...] = ()  # inputs Flowise has that are accepted and ignored
    # Inputs of this node a request's overrideConfig may not change (beyond ALWAYS_PROTECTED).
    protected: frozenset[str] = frozenset()
    # Whether the node can be the graph's answering node (a chain or an agent).
    answers: bool = False
    # A document loader's file input, and the file name endings it takes (".pdf"): where the upsert
    # route and `streamwise ingest` put uploaded files.
    file_input: str | None = None
    file_types: tuple[str, ...] = ()

    @property
    def not_overridable(self) -> frozenset[str]:
        return ALWAYS_PROTECTED | self.protected
