"""Flowise "plainText": the node's `text` input as one document.

As in Flowise, the document has no metadata of its own (no `source`): only what the `metadata` input
adds, and `loc` from a connected splitter. An empty text loads nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from streamwise.engine.retrieval import Document
from streamwise.nodes import inputs
from streamwise.nodes.loaders.base import COMMON_INPUTS, LoaderOptions, loader_options
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec


class PlainTextLoader:
    def __init__(self, node_id: str, text: str, options: LoaderOptions) -> None:
        self.node_id = node_id
        self.text = text
        self.options = options

    def load(self) -> Iterator[Document]:
        if self.text:
            yield from self.options.finish([Document(self.text, {})])


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> PlainTextLoader:
    text = inputs.text(node_inputs, "text") or ""
    return PlainTextLoader(node_id, text, loader_options(node_id, node_inputs))


SPEC = NodeSpec(
    name="plainText",
    label="Plain Text",
    category="Document Loaders",
    build=build,
    honoured=("text", *COMMON_INPUTS),
)
