"""What the retrieval chains share: asking the retriever, and turning passages into prompt text."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import aclosing

from streamwise.engine.ports import ChatModel, ChatTurn, SessionContext, Sources
from streamwise.engine.retrieval import Document, RetrievalContext, Retriever


async def retrieve(retriever: Retriever, query: str, session: SessionContext) -> list[Document]:
    return await retriever.retrieve(query, RetrievalContext(chatflow_id=session.chatflow_id))


def sources(documents: Sequence[Document]) -> Sources:
    return Sources(tuple(document.to_json() for document in documents))


def tagged(documents: Sequence[Document]) -> str:
    """Flowise's conversational chain format: `<doc id='0'>...</doc>`, one per line."""
    return "\n".join(
        f"<doc id='{index}'>{document.page_content}</doc>" for index, document in enumerate(documents)
    )


def stuffed(documents: Sequence[Document]) -> str:
    """LangChain's "stuff" format, which Flowise's retrieval QA chain uses: passages, blank-line apart."""
    return "\n\n".join(document.page_content for document in documents)


def history_text(turns: Sequence[ChatTurn]) -> str:
    """Earlier turns as LangChain writes them into a rephrase prompt: `human: ...`, `ai: ...`."""
    names = {"user": "human", "assistant": "ai", "system": "system"}
    return "\n".join(f"{names[turn.role]}: {turn.content}" for turn in turns)


async def complete(model: ChatModel, messages: Sequence[ChatTurn]) -> str:
    """A whole answer of the model, not streamed to anyone (e.g. a rephrased question)."""
    parts: list[str] = []
    async with aclosing(model.stream(messages)) as chunks:
        async for chunk in chunks:
            parts.extend(chunk)
    return "".join(parts).strip()
