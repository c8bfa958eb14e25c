"""Flowise "recursiveCharacterTextSplitter": split on "\\n\\n", then "\\n", then " ", then characters.

The splitter LangChain JS runs in Flowise, on `langchain-text-splitters` (see `langchain_js`): the
first separator the text contains splits it, pieces are merged into chunks of `chunkSize` characters
sharing up to `chunkOverlap`, and a piece still too long is split again with the next separators.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from streamwise.errors import NodeConfigError
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec
from streamwise.nodes.splitters.langchain_js import ChunkSplitter, JsRecursiveSplitter, chunk_settings

DEFAULT_SEPARATORS = ("\n\n", "\n", " ", "")


def separators(node_id: str, node_inputs: Mapping[str, Any]) -> list[str]:
    """`separators`: a JSON array of strings (Flowise's `["|", "##", ">", "-"]`), or a list."""
    value = node_inputs.get("separators")
    if value is None or value == "":
        return list(DEFAULT_SEPARATORS)
    problem = f'Node {node_id}: input \'separators\' must be a JSON array of strings, such as ["|", "##"]'
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise NodeConfigError(problem, node_id) from None
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise NodeConfigError(problem, node_id)
    return list(value)


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> ChunkSplitter:
    size, overlap = chunk_settings(node_id, node_inputs)
    chosen = separators(node_id, node_inputs)
    return ChunkSplitter(node_id, lambda: JsRecursiveSplitter(chosen, size, overlap))


SPEC = NodeSpec(
    name="recursiveCharacterTextSplitter",
    label="Recursive Character Text Splitter",
    category="Text Splitters",
    build=build,
    honoured=("chunkSize", "chunkOverlap", "separators"),
)
