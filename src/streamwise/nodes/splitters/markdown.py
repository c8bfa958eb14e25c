"""Flowise "markdownTextSplitter": split along Markdown headings, code blocks and rules, then as text.

LangChain JS's MarkdownTextSplitter is its recursive splitter with Markdown separators (they differ
from the Python port's regexes, so JS's list is used here). Flowise adds `splitByHeaders`: with a level
such as "h2", each section that starts at a heading of that level or above is one chunk, whatever its
size, with the document's metadata and no `loc`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from streamwise.engine.retrieval import Document
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec
from streamwise.nodes.splitters.langchain_js import (
    ChunkSplitter,
    JsRecursiveSplitter,
    chunk_settings,
    js_trim,
)

# LangChain JS's getSeparatorsForLanguage("markdown").
MARKDOWN_SEPARATORS = (
    "\n## ",
    "\n### ",
    "\n#### ",
    "\n##### ",
    "\n###### ",
    "```\n\n",
    "\n\n***\n\n",
    "\n\n---\n\n",
    "\n\n___\n\n",
    "\n\n",
    "\n",
    " ",
    "",
)
HEADER_LEVELS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_HEADING = re.compile(r"#{1,6}\s")
_HASHES = re.compile(r"#+")


def sections(text: str, max_level: int) -> list[str]:
    """Flowise's splitByHeaders: a new section at each heading of level `max_level` or above, each
    section trimmed. Empty sections (blank text before the first heading) are left out."""
    found: list[str] = []
    current: list[str] = []
    for line in text.split("\n"):
        hashes = _HASHES.match(line) if _HEADING.match(line) else None
        if hashes is not None and len(hashes.group()) <= max_level:
            if current:
                found.append(js_trim("\n".join(current)))
            current = [line]
        else:
            current.append(line)
    if current:
        found.append(js_trim("\n".join(current)))
    return [section for section in found if section]


class HeaderSplitter:
    """`splitByHeaders` on: one chunk per section, the document's metadata unchanged."""

    def __init__(self, node_id: str, max_level: int) -> None:
        self.node_id = node_id
        self.max_level = max_level

    def split(self, documents: Iterable[Document]) -> Iterator[Document]:
        for document in documents:
            for section in sections(document.page_content, self.max_level):
                yield Document(section, dict(document.metadata))


def build(
    node_id: str, node_inputs: Mapping[str, Any], services: NodeServices
) -> ChunkSplitter | HeaderSplitter:
    size, overlap = chunk_settings(node_id, node_inputs)
    by_headers = (inputs.text(node_inputs, "splitByHeaders") or "disabled").strip().lower()
    if by_headers in HEADER_LEVELS:
        return HeaderSplitter(node_id, HEADER_LEVELS[by_headers])
    if by_headers != "disabled":
        raise NodeConfigError(
            f"Node {node_id}: splitByHeaders must be disabled or one of h1 to h6, got {by_headers[:20]!r}",
            node_id,
        )
    return ChunkSplitter(node_id, lambda: JsRecursiveSplitter(list(MARKDOWN_SEPARATORS), size, overlap))


SPEC = NodeSpec(
    name="markdownTextSplitter",
    label="Markdown Text Splitter",
    category="Text Splitters",
    build=build,
    honoured=("chunkSize", "chunkOverlap", "splitByHeaders"),
)
