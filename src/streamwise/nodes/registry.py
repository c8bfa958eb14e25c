"""The node registry: Flowise node names → how to build them.

Each node module exposes a `SPEC`; `default_registry` collects them. The registry implements the
engine's `NodeCatalog` protocol, bound to one `NodeServices`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from streamwise.errors import GraphError
from streamwise.nodes.services import NodeServices

Category = Literal["Chat Models", "Chains", "Memory", "Prompts"]
Builder = Callable[[str, Mapping[str, Any], NodeServices], object]


@dataclass(frozen=True)
class NodeSpec:
    name: str  # Flowise's node name, e.g. "chatOpenAI"
    label: str  # Flowise's label, e.g. "ChatOpenAI"
    category: Category
    build: Builder  # (node_id, resolved inputs, services) -> instance
    honoured: tuple[str, ...] = ()  # inputs this implementation reads (documented in docs/nodes.md)
    ignored: tuple[str, ...] = ()  # inputs Flowise has that are accepted and ignored


class NodeRegistry:
    def __init__(self, specs: Iterable[NodeSpec], services: NodeServices) -> None:
        self.specs: dict[str, NodeSpec] = {}
        self.services = services
        for spec in specs:
            if spec.name in self.specs:
                raise ValueError(f"node {spec.name!r} registered twice")
            self.specs[spec.name] = spec

    def knows(self, name: str) -> bool:
        return name in self.specs

    def category(self, name: str) -> str:
        return self.specs[name].category

    def build(self, name: str, node_id: str, inputs: Mapping[str, Any]) -> object:
        spec = self.specs.get(name)
        if spec is None:
            raise GraphError(f"Node {node_id} has unknown type {name!r}", node_id)
        return spec.build(node_id, inputs, self.services)


def all_specs() -> list[NodeSpec]:
    from streamwise.nodes.chains import conversation_chain, llm_chain
    from streamwise.nodes.memory import buffer_memory, buffer_window_memory
    from streamwise.nodes.models import chat_local, chat_ollama, chat_openai, fake
    from streamwise.nodes.prompts import chat_prompt_template, prompt_template

    modules = [
        chat_openai,
        chat_ollama,
        chat_local,
        fake,
        llm_chain,
        conversation_chain,
        buffer_memory,
        buffer_window_memory,
        prompt_template,
        chat_prompt_template,
    ]
    return [module.SPEC for module in modules]


def default_registry(services: NodeServices | None = None) -> NodeRegistry:
    return NodeRegistry(all_specs(), services or NodeServices())
