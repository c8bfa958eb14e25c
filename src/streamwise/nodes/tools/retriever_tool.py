"""Flowise "retrieverTool" (Retriever Tool): a vector store's retriever, offered to an agent as a tool.

The model calls it with `input`, the text to look up; the passages come back to the model joined by
blank lines, as Flowise does. With `returnSourceDocuments` they are also the call's
`usedTools[].sourceDocuments` and join the answer's `sourceDocuments`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamwise.engine.retrieval import RetrievalContext, Retriever
from streamwise.engine.tools import TOOL_NAME, ToolContext, ToolFailure, ToolResult, ToolSchema
from streamwise.errors import NodeConfigError, StreamwiseError
from streamwise.nodes import inputs as read
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

MAX_QUERY_CHARS = 10_000
PARAMETERS = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "input to look up in retriever"}},
    "required": ["input"],
}


@dataclass(frozen=True)
class RetrieverTool:
    schema: ToolSchema
    retriever: Retriever
    return_sources: bool
    side_effects: bool = False

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        query = arguments.get("input")
        if not isinstance(query, str) or not query.strip():
            raise ToolFailure("'input' must be the text to look up")
        if len(query) > MAX_QUERY_CHARS:
            raise ToolFailure(f"'input' is longer than {MAX_QUERY_CHARS:,} characters")
        try:
            documents = await self.retriever.retrieve(
                query, RetrievalContext(chatflow_id=context.session.chatflow_id)
            )
        except StreamwiseError as exc:  # the embedder or the store failed: the model may try again
            raise ToolFailure(exc.message, detail=exc.detail) from None
        output = "\n\n".join(document.page_content for document in documents)
        sources = tuple(document.to_json() for document in documents) if self.return_sources else ()
        return ToolResult(output, sources)


def tool_name(inputs: Mapping[str, Any], node_id: str, default: str) -> str:
    """A tool's name as the model calls it: Flowise's `name` input, checked against OpenAI's rule."""
    name = read.text(inputs, "name", default) or default
    if not TOOL_NAME.match(name):
        raise NodeConfigError(
            f"Node {node_id}: the tool name {name[:80]!r} must be 1 to 64 letters, digits, '_' or '-'",
            node_id,
        )
    return name


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> RetrieverTool:
    retriever = read.instance(inputs, "retriever", node_id, Retriever, required=True)
    assert retriever is not None
    if read.text(inputs, "retrieverToolMetadataFilter"):
        raw = inputs.get("retrieverToolMetadataFilter")
        try:
            json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            raise NodeConfigError(
                f"Node {node_id}: input 'retrieverToolMetadataFilter' is not JSON", node_id
            ) from None
    name = tool_name(inputs, node_id, "search_documents")
    description = read.text(inputs, "description") or "Searches and returns passages from the documents."
    return RetrieverTool(
        ToolSchema(name, description, PARAMETERS),
        retriever,
        return_sources=read.flag(inputs, "returnSourceDocuments", False),
    )


SPEC = NodeSpec(
    name="retrieverTool",
    label="Retriever Tool",
    category="Tools",
    build=build,
    honoured=("name", "description", "retriever", "returnSourceDocuments"),
    ignored=("retrieverToolMetadataFilter", "score"),
)
