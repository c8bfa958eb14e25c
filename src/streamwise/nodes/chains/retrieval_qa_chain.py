"""Flowise "retrievalQAChain": retrieve passages for the question, answer from them (no memory)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from streamwise.engine.ports import ChatModel, ChatTurn, Memory, Part, SessionContext
from streamwise.engine.retrieval import Retriever
from streamwise.nodes import inputs as read
from streamwise.nodes.chains.retrieval import retrieve, sources, stuffed
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

# LangChain's "stuff" question-answering prompt for chat models, which Flowise's chain uses.
SYSTEM_TEMPLATE = (
    "Use the following pieces of context to answer the users question. \n"
    "If you don't know the answer, just say that you don't know, don't try to make up an answer.\n"
    "----------------\n"
)


@dataclass(frozen=True)
class RetrievalQAChain:
    model: ChatModel
    retriever: Retriever
    return_source_documents: bool = False

    @property
    def can_stream(self) -> bool:
        return self.model.can_stream

    @property
    def memory(self) -> Memory | None:
        return None

    async def answer(self, question: str, session: SessionContext) -> AsyncGenerator[Part, None]:
        documents = await retrieve(self.retriever, question, session)
        if self.return_source_documents and documents:
            yield sources(documents)
        messages = [ChatTurn("system", SYSTEM_TEMPLATE + stuffed(documents)), ChatTurn("user", question)]
        async with aclosing(self.model.stream(messages)) as chunks:
            async for chunk in chunks:
                yield chunk


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> RetrievalQAChain:
    model = read.instance(inputs, "model", node_id, ChatModel, required=True)
    retriever = read.instance(inputs, "vectorStoreRetriever", node_id, Retriever, required=True)
    assert model is not None and retriever is not None
    return RetrievalQAChain(model, retriever, read.flag(inputs, "returnSourceDocuments", False))


SPEC = NodeSpec(
    name="retrievalQAChain",
    label="Retrieval QA Chain",
    category="Chains",
    answers=True,
    build=build,
    honoured=("model", "vectorStoreRetriever", "returnSourceDocuments"),
    ignored=("inputModeration",),
)
