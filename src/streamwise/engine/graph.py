"""flowData → a validated graph: nodes, references between them, and the answering node.

A Flowise graph refers to another node's output with the string `{{nodeId.data.instance}}` in an
input; edges mirror those references. Validation rejects what could never run (unknown node types,
references to missing nodes, cycles, no single answering node) with a message naming the node.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from streamwise.engine.errors import GraphError
from streamwise.engine.ports import NodeCatalog

_REFERENCE = re.compile(r"^\{\{\s*([^{}\s]+?)\.data\.instance\s*\}\}$")
ANSWERING_CATEGORIES = frozenset({"Chains", "Agents", "Multi Agents", "Sequential Agents"})


@dataclass(frozen=True)
class GraphNode:
    id: str
    name: str
    label: str
    inputs: Mapping[str, Any]
    # Names of the inputs Flowise lists for this node (inputParams/inputAnchors), used by overrides.
    param_names: frozenset[str]

    def references(self) -> dict[str, list[str]]:
        """Input name → ids of the nodes it refers to."""
        found: dict[str, list[str]] = {}
        for key, value in self.inputs.items():
            ids = [ref for ref in map(reference_target, _as_list(value)) if ref is not None]
            if ids:
                found[key] = ids
        return found


@dataclass(frozen=True)
class FlowGraph:
    nodes: Mapping[str, GraphNode]
    order: tuple[str, ...]  # dependencies first
    ending_node_id: str

    @property
    def ending_node(self) -> GraphNode:
        return self.nodes[self.ending_node_id]


def reference_target(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    match = _REFERENCE.match(value.strip())
    return match.group(1) if match else None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def parse_flow_data(flow_data: str | Mapping[str, Any], catalog: NodeCatalog) -> FlowGraph:
    """Parse and validate; raises `GraphError` naming the offending node."""
    if isinstance(flow_data, str):
        return _parse_cached(flow_data, catalog)  # type: ignore[arg-type]  # registries hash by identity
    return _parse(flow_data, catalog)


@lru_cache(maxsize=256)
def _parse_cached(flow_data: str, catalog: Any) -> FlowGraph:  # Any: the catalog is a cache key
    try:
        raw = json.loads(flow_data)
    except json.JSONDecodeError as exc:
        raise GraphError(f"flowData is not valid JSON: {exc.msg} at position {exc.pos}") from None
    return _parse(raw, catalog)


def _parse(raw: Any, catalog: NodeCatalog) -> FlowGraph:
    if not isinstance(raw, Mapping):
        raise GraphError("flowData must be a JSON object with 'nodes' and 'edges'")
    raw_nodes = raw.get("nodes")
    raw_edges = raw.get("edges", [])
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise GraphError("flowData has no nodes")
    if not isinstance(raw_edges, list):
        raise GraphError("flowData 'edges' must be a list")

    nodes: dict[str, GraphNode] = {}
    for index, raw_node in enumerate(raw_nodes):
        node = _parse_node(raw_node, index)
        if node.id in nodes:
            raise GraphError(f"Node id {node.id!r} appears twice", node.id)
        if not catalog.knows(node.name):
            raise GraphError(f"Node {node.id} has unknown type {node.name!r}", node.id)
        nodes[node.id] = node

    depends_on: dict[str, set[str]] = {node_id: set() for node_id in nodes}
    for node in nodes.values():
        for key, targets in node.references().items():
            for target in targets:
                if target not in nodes:
                    raise GraphError(
                        f"Node {node.id} input {key!r} refers to missing node {target!r}", node.id
                    )
                depends_on[node.id].add(target)

    has_outgoing: set[str] = set()
    for index, edge in enumerate(raw_edges):
        if not isinstance(edge, Mapping):
            raise GraphError(f"Edge #{index} is not an object")
        source: Any = edge.get("source")
        sink: Any = edge.get("target")
        for end in (source, sink):
            if end not in nodes:
                raise GraphError(
                    f"Edge #{index} ({source} → {sink}) refers to missing node {end!r}", str(end)
                )

        if source == sink:
            raise GraphError(f"Node {source} is connected to itself", source)
        has_outgoing.add(source)
        depends_on[sink].add(source)

    order = _topological_order(depends_on)
    ending = [
        node_id
        for node_id in nodes
        if node_id not in has_outgoing and catalog.category(nodes[node_id].name) in ANSWERING_CATEGORIES
    ]
    referenced = {target for deps in depends_on.values() for target in deps}
    ending = [node_id for node_id in ending if node_id not in referenced]
    if not ending:
        raise GraphError("flowData has no answering node (a chain with no outgoing connection)")
    if len(ending) > 1:
        raise GraphError(f"flowData has more than one answering node: {', '.join(sorted(ending))}", ending[0])
    return FlowGraph(nodes=nodes, order=order, ending_node_id=ending[0])


def _parse_node(raw_node: Any, index: int) -> GraphNode:
    if not isinstance(raw_node, Mapping):
        raise GraphError(f"Node #{index} is not an object")
    node_id = raw_node.get("id")
    data = raw_node.get("data")
    if not isinstance(node_id, str) or not node_id:
        raise GraphError(f"Node #{index} has no id")
    if not isinstance(data, Mapping):
        raise GraphError(f"Node {node_id} has no data", node_id)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise GraphError(f"Node {node_id} has no data.name", node_id)
    inputs = data.get("inputs") or {}
    if not isinstance(inputs, Mapping):
        raise GraphError(f"Node {node_id} data.inputs must be an object", node_id)
    params: set[str] = set(inputs)
    for group in ("inputParams", "inputAnchors"):
        for param in data.get(group) or []:
            if isinstance(param, Mapping) and isinstance(param.get("name"), str):
                params.add(param["name"])
    label: Any = data.get("label")
    return GraphNode(
        id=node_id,
        name=name,
        label=label if isinstance(label, str) else name,
        inputs=dict(inputs),
        param_names=frozenset(params),
    )


def _topological_order(depends_on: Mapping[str, set[str]]) -> tuple[str, ...]:
    """Kahn's algorithm; a leftover node sits on a cycle."""
    remaining = {node_id: set(deps) for node_id, deps in depends_on.items()}
    order: list[str] = []
    ready = [node_id for node_id, deps in remaining.items() if not deps]
    while ready:
        node_id = ready.pop(0)
        order.append(node_id)
        del remaining[node_id]
        for other, deps in remaining.items():
            if node_id in deps:
                deps.discard(node_id)
                if not deps and other not in ready:
                    ready.append(other)
    if remaining:
        culprit = sorted(remaining)[0]
        raise GraphError(f"Node {culprit} is part of a cycle: {', '.join(sorted(remaining))}", culprit)
    return tuple(order)
