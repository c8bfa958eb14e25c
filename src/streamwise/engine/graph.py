"""flowData → a validated graph: nodes, references between them, and the answering node.

A Flowise graph refers to another node's output with the string `{{nodeId.data.instance}}` in an
input; edges mirror those references. The shape of flowData is checked by a typed model first (a
wrong type gets a message naming the node and the field), then the graph: unknown node types,
references to missing nodes, cycles, no single answering node. Every step is linear in the size of
the graph, and `GraphLimits` bound that size.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamwise import jsontext
from streamwise.engine.ports import NodeCatalog
from streamwise.errors import BadRequest, GraphError, LimitExceeded

_REFERENCE = re.compile(r"^\{\{\s*([^{}\s]+?)\.data\.instance\s*\}\}$")
# Where Flowise's canvas also keeps a node's credential id, among its inputs.
CREDENTIAL_INPUT = "FLOWISE_CREDENTIAL_ID"


@dataclass(frozen=True)
class GraphLimits:
    """How big a graph may be (settings: STREAMWISE_MAX_FLOW_NODES, STREAMWISE_MAX_FLOW_EDGES)."""

    max_nodes: int = 1_000
    max_edges: int = 5_000


# The typed shape of flowData: only what Streamwise reads is checked; Flowise's many other fields
# (position, width, selected, baseClasses, ...) are accepted and left alone.
class _Param(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = None


class _NodeData(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1)
    label: str | None = None
    category: str | None = None
    inputs: dict[str, Any] | None = None
    # Flowise's credential record id; anything but text is treated as none, as Flowise finds none.
    credential: Any = None
    inputParams: list[_Param] | None = None
    inputAnchors: list[_Param] | None = None


class _Node(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1)
    data: _NodeData


class _Edge(BaseModel):
    model_config = ConfigDict(extra="ignore")
    source: str
    target: str
    sourceHandle: str | None = None
    targetHandle: str | None = None


class _FlowData(BaseModel):
    model_config = ConfigDict(extra="ignore")
    nodes: list[_Node]
    edges: list[_Edge] | None = None


@dataclass(frozen=True)
class GraphNode:
    id: str
    name: str
    label: str
    inputs: Mapping[str, Any]
    # Names of the inputs Flowise lists for this node (inputParams/inputAnchors), used by overrides.
    param_names: frozenset[str]
    # The Flowise credential record the node uses: `data.credential`, else its inputs'
    # `FLOWISE_CREDENTIAL_ID` (Flowise's canvas writes both).
    credential: str | None = None

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
    if not isinstance(value, str) or not value.startswith("{{"):
        return None
    match = _REFERENCE.match(value.strip())
    return match.group(1) if match else None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def parse_flow_data(
    flow_data: str | bytes | Mapping[str, Any], catalog: NodeCatalog, limits: GraphLimits | None = None
) -> FlowGraph:
    """Parse and validate; raises `GraphError` naming the offending node (`LimitExceeded` when too big)."""
    raw: Any = flow_data
    if isinstance(flow_data, str | bytes):
        try:
            raw = jsontext.loads(flow_data, "flowData")
        except BadRequest as exc:
            raise GraphError(exc.message) from None
    return _parse(raw, catalog, limits or GraphLimits())


def _parse(raw: Any, catalog: NodeCatalog, limits: GraphLimits) -> FlowGraph:
    if not isinstance(raw, Mapping):
        raise GraphError("flowData must be a JSON object with 'nodes' and 'edges'")
    _check_size(raw, limits)
    try:
        shape = _FlowData.model_validate(raw)
    except ValidationError as exc:
        raise _shape_error(exc, raw) from None
    if not shape.nodes:
        raise GraphError("flowData has no nodes")

    nodes: dict[str, GraphNode] = {}
    for raw_node in shape.nodes:
        node = _graph_node(raw_node)
        if node.id in nodes:
            raise GraphError(f"Node id {node.id!r} appears twice", node.id)
        if not catalog.knows(node.name):
            raise GraphError(f"Node {node.id} has unknown type {node.name!r}", node.id)
        nodes[node.id] = node

    depends_on: dict[str, set[str]] = {node_id: set() for node_id in nodes}
    referenced: set[str] = set()
    for node in nodes.values():
        for key, targets in node.references().items():
            for target in targets:
                if target not in nodes:
                    raise GraphError(
                        f"Node {node.id} input {key!r} refers to missing node {target!r}", node.id
                    )
                depends_on[node.id].add(target)
                referenced.add(target)

    has_outgoing: set[str] = set()
    for index, edge in enumerate(shape.edges or ()):
        source, sink = edge.source, edge.target
        for end in (source, sink):
            if end not in nodes:
                raise GraphError(f"Edge #{index} ({source} → {sink}) refers to missing node {end!r}", end)
        if source == sink:
            raise GraphError(f"Node {source} is connected to itself", source)
        has_outgoing.add(source)
        depends_on[sink].add(source)
        referenced.add(source)

    order = _topological_order(depends_on)
    ending = [
        node_id
        for node_id in nodes
        if node_id not in has_outgoing and node_id not in referenced and catalog.answers(nodes[node_id].name)
    ]
    if not ending:
        raise GraphError("flowData has no answering node (a chain with no outgoing connection)")
    if len(ending) > 1:
        raise GraphError(f"flowData has more than one answering node: {', '.join(sorted(ending))}", ending[0])
    return FlowGraph(nodes=nodes, order=order, ending_node_id=ending[0])


def _check_size(raw: Mapping[str, Any], limits: GraphLimits) -> None:
    """Refuse an oversized graph before spending time on validating it."""
    for key, limit, setting in (
        ("nodes", limits.max_nodes, "STREAMWISE_MAX_FLOW_NODES"),
        ("edges", limits.max_edges, "STREAMWISE_MAX_FLOW_EDGES"),
    ):
        items = raw.get(key)
        if isinstance(items, list) and len(items) > limit:
            raise LimitExceeded(f"flowData has {len(items):,} {key}; the limit is {limit:,} ({setting})")


def _shape_error(exc: ValidationError, raw: Mapping[str, Any]) -> GraphError:
    """The first problem, worded with the node (or edge) it belongs to and the field's path."""
    error = exc.errors(include_url=False)[0]
    loc: Sequence[int | str] = error["loc"]
    what = _describe_input(error.get("input"))
    problem = f"{error['msg'][0].lower()}{error['msg'][1:]}{what}"
    if len(loc) >= 2 and loc[0] in ("nodes", "edges") and isinstance(loc[1], int):
        index = loc[1]
        items = raw.get(str(loc[0]))
        item = items[index] if isinstance(items, list) and index < len(items) else None
        item_id = item.get("id") if isinstance(item, Mapping) else None
        field = ".".join(str(part) for part in loc[2:])
        if loc[0] == "nodes":
            node_id = item_id if isinstance(item_id, str) and item_id else None
            who = f"Node {node_id}" if node_id else f"Node #{index}"
            if not field:
                return GraphError(f"{who} must be an object with 'id' and 'data'", node_id)
            return GraphError(f"{who}: field '{field}': {problem}", node_id)
        who = f"Edge {item_id}" if isinstance(item_id, str) and item_id else f"Edge #{index}"
        if not field:
            return GraphError(f"{who} must be an object with 'source' and 'target'")
        return GraphError(f"{who}: field '{field}': {problem}")
    field = ".".join(str(part) for part in loc)
    return GraphError(f"flowData field '{field}': {problem}")


def _describe_input(value: Any) -> str:
    if isinstance(value, Mapping) or value is None:
        return ""  # a missing field: pydantic's "field required" says it all
    return f" (got {type(value).__name__})"


def _graph_node(raw: _Node) -> GraphNode:
    data = raw.data
    inputs = data.inputs or {}
    params: set[str] = set(inputs)
    for group in (data.inputParams, data.inputAnchors):
        for param in group or ():
            if param.name:
                params.add(param.name)
    return GraphNode(
        id=raw.id,
        name=data.name,
        label=data.label or data.name,
        inputs=inputs,
        param_names=frozenset(params),
        credential=_credential_id(data.credential) or _credential_id(inputs.get(CREDENTIAL_INPUT)),
    )


def _credential_id(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _topological_order(depends_on: Mapping[str, set[str]]) -> tuple[str, ...]:
    """Kahn's algorithm in linear time; nodes left over sit on a cycle."""
    waiting = {node_id: len(deps) for node_id, deps in depends_on.items()}
    dependents: dict[str, list[str]] = {node_id: [] for node_id in depends_on}
    for node_id, deps in depends_on.items():
        for dep in deps:
            dependents[dep].append(node_id)
    ready = deque(node_id for node_id, count in waiting.items() if count == 0)
    order: list[str] = []
    while ready:
        node_id = ready.popleft()
        order.append(node_id)
        for other in dependents[node_id]:
            waiting[other] -= 1
            if waiting[other] == 0:
                ready.append(other)
    if len(order) < len(depends_on):
        remaining = sorted(set(depends_on) - set(order))
        culprit = remaining[0]
        shown = ", ".join(remaining[:10]) + (", …" if len(remaining) > 10 else "")
        raise GraphError(f"Node {culprit} is part of a cycle: {shown}", culprit)
    return tuple(order)


async def parse_flow_data_off_loop(
    flow_data: str | bytes, catalog: NodeCatalog, limits: GraphLimits | None = None
) -> FlowGraph:
    """`parse_flow_data`, in a worker thread when the text is large: a chatflow of the largest
    accepted size takes a good part of a second to validate, and other streams must keep flowing."""
    if len(flow_data) > jsontext.OFFLOAD_BYTES:
        return await asyncio.to_thread(parse_flow_data, flow_data, catalog, limits)
    return parse_flow_data(flow_data, catalog, limits)
