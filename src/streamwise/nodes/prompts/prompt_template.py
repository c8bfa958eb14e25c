"""Flowise "promptTemplate": one user message rendered from a template."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamwise.engine.ports import ChatTurn
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs as read
from streamwise.nodes.prompts.template import fill, prompt_values
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec


@dataclass(frozen=True)
class PromptTemplate:
    template: str
    values: Mapping[str, str]

    def render(self, question: str, history: Sequence[ChatTurn]) -> list[ChatTurn]:
        return [*history, ChatTurn("user", fill(self.template, self.values, question))]


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> PromptTemplate:
    template = read.text(inputs, "template")
    if template is None:
        raise NodeConfigError(f"Node {node_id}: input 'template' is required", node_id)
    return PromptTemplate(template, prompt_values(inputs.get("promptValues"), node_id))


SPEC = NodeSpec(
    name="promptTemplate",
    label="Prompt Template",
    category="Prompts",
    build=build,
    honoured=("template", "promptValues"),
)
