"""Flowise "characterTextSplitter": split on one separator (default "\\n\\n") and merge into chunks.

LangChain JS's CharacterTextSplitter, on `langchain-text-splitters` (see `langchain_js`): the pieces
between separators are joined again with the separator into chunks of at most `chunkSize` characters
(a longer piece is a chunk of its own) sharing up to `chunkOverlap`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamwise.nodes import inputs
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec
from streamwise.nodes.splitters.langchain_js import ChunkSplitter, JsCharacterSplitter, chunk_settings

DEFAULT_SEPARATOR = "\n\n"


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> ChunkSplitter:
    size, overlap = chunk_settings(node_id, node_inputs)
    # Taken as typed, as Flowise does: no trimming, no escapes ("\n" typed is two characters).
    separator = inputs.text(node_inputs, "separator") or DEFAULT_SEPARATOR
    return ChunkSplitter(node_id, lambda: JsCharacterSplitter(separator, size, overlap))


SPEC = NodeSpec(
    name="characterTextSplitter",
    label="Character Text Splitter",
    category="Text Splitters",
    build=build,
    honoured=("chunkSize", "chunkOverlap", "separator"),
)
