"""Flowise "chatPromptTemplate": a system message, the conversation so far, then the human message."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamwise.engine.ports import ChatTurn
from streamwise.nodes import inputs as read
from streamwise.nodes.prompts.template import fill, prompt_values
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec


@dataclass(frozen=True)
class ChatPromptTemplate:
    system: str
    human: str
    values: Mapping[str, str]

    def render(self, question: str, history: Sequence[ChatTurn]) -> list[ChatTurn]:
        turns: list[ChatTurn] = []
        if self.system:
            turns.append(
                ChatTurn("system", fill(self.system, self.values, question, question_fills_unset=False))
            )
        turns.extend(history)
        turns.append(ChatTurn("user", fill(self.human, self.values, question)))
        return turns


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> ChatPromptTemplate:
    return ChatPromptTemplate(
        system=read.text(inputs, "systemMessagePrompt", "") or "",
        human=read.text(inputs, "humanMessagePrompt", "{question}") or "{question}",
        values=prompt_values(inputs.get("promptValues"), node_id),
    )


SPEC = NodeSpec(
    name="chatPromptTemplate",
    label="Chat Prompt Template",
    category="Prompts",
    build=build,
    honoured=("systemMessagePrompt", "humanMessagePrompt", "promptValues"),
    ignored=("messageHistory", "tabIdentifier"),
)
