"""Flowise "conversationChain": system message, remembered turns, then the question."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from streamwise.engine.ports import ChatModel, ChatTurn, Memory, Part, Prompt, SessionContext
from streamwise.nodes import inputs as read
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

# Flowise's default for this chain.
DEFAULT_SYSTEM_MESSAGE = (
    "The following is a friendly conversation between a human and an AI. The AI is talkative and "
    "provides lots of specific details from its context. If the AI does not know the answer to a "
    "question, it truthfully says it does not know."
)


@dataclass(frozen=True)
class ConversationChain:
    model: ChatModel
    memory: Memory | None
    system_message: str
    prompt: Prompt | None = None

    @property
    def can_stream(self) -> bool:
        return self.model.can_stream

    async def answer(self, question: str, session: SessionContext) -> AsyncGenerator[Part, None]:
        history = await self.memory.load(session) if self.memory else list(session.seed_history)
        if self.prompt is not None:
            messages = self.prompt.render(question, history)
        else:
            system = [ChatTurn("system", self.system_message)] if self.system_message else []
            messages = [*system, *history, ChatTurn("user", question)]
        # aclosing: closing this generator must close the model's stream (and its upstream request).
        async with aclosing(self.model.stream(messages)) as chunks:
            async for chunk in chunks:
                yield chunk


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> ConversationChain:
    model = read.instance(inputs, "model", node_id, ChatModel, required=True)
    assert model is not None
    return ConversationChain(
        model=model,
        memory=read.instance(inputs, "memory", node_id, Memory, required=False),
        system_message=read.text(inputs, "systemMessagePrompt", DEFAULT_SYSTEM_MESSAGE) or "",
        prompt=read.instance(inputs, "chatPromptTemplate", node_id, Prompt, required=False),
    )


SPEC = NodeSpec(
    name="conversationChain",
    label="Conversation Chain",
    category="Chains",
    answers=True,
    build=build,
    honoured=("model", "memory", "systemMessagePrompt", "chatPromptTemplate"),
    ignored=("inputModeration",),
)
