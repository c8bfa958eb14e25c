"""Flowise "llmChain": a prompt rendered from the question, answered by a chat model."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

from streamwise.engine.ports import ChatModel, ChatTurn, Memory, Part, Prompt, SessionContext
from streamwise.nodes import inputs as read
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec


@dataclass(frozen=True)
class LLMChain:
    model: ChatModel
    prompt: Prompt | None

    @property
    def can_stream(self) -> bool:
        return self.model.can_stream

    @property
    def memory(self) -> Memory | None:
        return None

    def answer(self, question: str, session: SessionContext) -> AsyncGenerator[Part, None]:
        messages = self.prompt.render(question, []) if self.prompt else [ChatTurn("user", question)]
        return self.model.stream(messages)


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> LLMChain:
    model = read.instance(inputs, "model", node_id, ChatModel, required=True)
    prompt = read.instance(inputs, "prompt", node_id, Prompt, required=False)
    assert model is not None
    return LLMChain(model, prompt)


SPEC = NodeSpec(
    name="llmChain",
    label="LLM Chain",
    category="Chains",
    answers=True,
    build=build,
    honoured=("model", "prompt"),
    ignored=("outputParser", "inputModeration", "chainName"),
)
