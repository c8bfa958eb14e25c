"""Flowise "conversationalRetrievalQAChain": document QA that keeps a conversation.

As Flowise does it: with earlier turns, the question is first rephrased into a standalone one by the
model (that answer is not streamed); the passages are retrieved for it; the model then answers with
the response prompt (the passages in `{context}`) as its system message, the earlier turns, and the
question. With `returnSourceDocuments`, the passages come back as the answer's sources.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from streamwise.engine.ports import ChatModel, ChatTurn, Memory, Part, SessionContext
from streamwise.engine.retrieval import Retriever
from streamwise.nodes import inputs as read
from streamwise.nodes.chains.retrieval import complete, history_text, retrieve, sources, tagged
from streamwise.nodes.prompts.template import render
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

# Flowise's defaults for this chain.
REPHRASE_TEMPLATE = (
    "Given the following conversation and a follow up question, rephrase the follow up question to be "
    "a standalone question.\n\nChat History:\n{chat_history}\nFollow Up Input: {question}\n"
    "Standalone Question:"
)
RESPONSE_TEMPLATE = (
    'I want you to act as a document that I am having a conversation with. Your name is "AI Assistant". '
    "Using the provided context, answer the user's question to the best of your ability using the "
    "resources provided.\nIf there is nothing in the context relevant to the question at hand, just say "
    '"Hmm, I\'m not sure" and stop after that. Refuse to answer any question not about the info. Never '
    "break character.\n------------\n{context}\n------------\nREMEMBER: If there is no relevant "
    "information within the context, just say \"Hmm, I'm not sure\". Don't try to make up an answer. "
    "Never break character."
)

QA_TEMPLATE = (
    "Use the following pieces of context to answer the question at the end.\n\n{context}\n\n"
    "Question: {question}\nHelpful Answer:"
)


@dataclass(frozen=True)
class ConversationalRetrievalQAChain:
    model: ChatModel
    retriever: Retriever
    memory: Memory | None
    rephrase_prompt: str = REPHRASE_TEMPLATE
    response_prompt: str = RESPONSE_TEMPLATE
    return_source_documents: bool = False

    @property
    def can_stream(self) -> bool:
        return self.model.can_stream

    async def answer(self, question: str, session: SessionContext) -> AsyncGenerator[Part, None]:
        history = await self.memory.load(session) if self.memory else list(session.seed_history)
        query = question
        if history:
            prompt = render(
                self.rephrase_prompt, {"chat_history": history_text(history), "question": question}
            )
            query = await complete(self.model, [ChatTurn("user", prompt)]) or question
        documents = await retrieve(self.retriever, query, session)
        if self.return_source_documents and documents:
            yield sources(documents)
        values = {"context": tagged(documents), "question": question, "chat_history": history_text(history)}
        messages = [
            ChatTurn("system", render(self.response_prompt, values)),
            *history,
            ChatTurn("user", question),
        ]
        # Flowise's `start` for this chain is the first token itself (its other chains send the
        # model's first delta, empty for OpenAI-style servers): leading empty chunks are left out.
        leading = True
        async with aclosing(self.model.stream(messages)) as chunks:
            async for chunk in chunks:
                if leading:
                    chunk = [text for text in chunk if text]
                    if not chunk:
                        continue
                    leading = False
                yield chunk


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> ConversationalRetrievalQAChain:
    model = read.instance(inputs, "model", node_id, ChatModel, required=True)
    retriever = read.instance(inputs, "vectorStoreRetriever", node_id, Retriever, required=True)
    assert model is not None and retriever is not None
    response = read.text(inputs, "responsePrompt") or RESPONSE_TEMPLATE
    # Flowise's deprecated system message still works: it turns the response prompt into a QA one.
    system = read.text(inputs, "systemMessagePrompt")
    if system:
        response = f"{system}\n{QA_TEMPLATE}"
    return ConversationalRetrievalQAChain(
        model=model,
        retriever=retriever,
        memory=read.instance(inputs, "memory", node_id, Memory, required=False),
        rephrase_prompt=read.text(inputs, "rephrasePrompt") or REPHRASE_TEMPLATE,
        response_prompt=response,
        return_source_documents=read.flag(inputs, "returnSourceDocuments", False),
    )


SPEC = NodeSpec(
    name="conversationalRetrievalQAChain",
    label="Conversational Retrieval QA Chain",
    category="Chains",
    answers=True,
    build=build,
    honoured=(
        "model",
        "vectorStoreRetriever",
        "memory",
        "returnSourceDocuments",
        "rephrasePrompt",
        "responsePrompt",
        "systemMessagePrompt",
    ),
    ignored=("inputModeration", "chainOption"),
)
