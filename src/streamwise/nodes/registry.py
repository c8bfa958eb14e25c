"""The node registry: Flowise node names → their specs, bound to one `NodeServices`.

It implements the engine's `NodeCatalog` protocol. Which nodes exist is decided by whoever builds it:
`default_registry` takes the built-in catalog (`nodes/catalog.py`) plus any extra specs; the
specs of modules named in STREAMWISE_NODE_MODULES (tests and benchmarks add their scripted fake model
this way) are loaded by `node_modules`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streamwise.errors import GraphError
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

__all__ = ["NodeRegistry", "NodeSpec", "default_registry", "node_modules"]


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

    def answers(self, name: str) -> bool:
        return self.specs[name].answers

    def protected(self, name: str) -> frozenset[str]:
        return self.specs[name].not_overridable

    def file_input(self, name: str) -> tuple[str, tuple[str, ...]] | None:
        spec = self.specs[name]
        return (spec.file_input, spec.file_types) if spec.file_input else None

    def build(self, name: str, node_id: str, inputs: Mapping[str, Any]) -> object:
        spec = self.specs.get(name)
        if spec is None:
            raise GraphError(f"Node {node_id} has unknown type {name!r}", node_id)
        return spec.build(node_id, inputs, self.services)


def node_modules(names: Sequence[str]) -> list[NodeSpec]:
    """The specs of extra node modules: each exposes `SPEC` or `SPECS`."""
    specs: list[NodeSpec] = []
    for name in names:
        module: Any = importlib.import_module(name)
        found = getattr(module, "SPECS", None) or [getattr(module, "SPEC", None)]
        if not all(isinstance(spec, NodeSpec) for spec in found):
            raise ValueError(f"node module {name!r} has no SPEC or SPECS of node specs")
        specs.extend(found)
    return specs


def default_registry(services: NodeServices | None = None, extra: Iterable[NodeSpec] = ()) -> NodeRegistry:
    from streamwise.nodes.catalog import BUILTINS

    return NodeRegistry([*BUILTINS, *extra], services or NodeServices())
