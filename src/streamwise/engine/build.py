"""Turn a validated graph into node instances for one request, applying `overrideConfig` as the
chatflow's override policy (engine/overrides.py) allows.

Builds are per request and cheap: heavy resources (HTTP clients, loaded models) live in the node
services and are shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamwise.engine.graph import FlowGraph, GraphNode, reference_target
from streamwise.engine.overrides import ALLOW_ALL, OverridePolicy, refused_input
from streamwise.engine.ports import Answerer, NodeCatalog
from streamwise.errors import GraphError, NodeConfigError

# `overrideConfig` keys that are about the request rather than node inputs: `vars` holds variables,
# gated by name (overrides.permitted_variables); `analytics` configures Flowise's tracing.
REQUEST_KEYS = frozenset({"sessionId", "vars", "analytics"})
_NOT_FOR_THIS_NODE = object()


def node_inputs(
    node: GraphNode,
    override_config: Mapping[str, Any] | None,
    protected: frozenset[str],
    policy: OverridePolicy | None = None,
) -> dict[str, Any]:
    """The node's inputs with per-request overrides applied, as Flowise does.

    An override value either applies to every node that has the input (`{"temperature": 0.1}`) or,
    when it is an object keyed by node ids, only to those nodes (`{"temperature": {"chatOpenAI_0": 0.1}}`).
    Only inputs the chatflow's `policy` enables are overridden; None enables every input, for the
    engine's own callers (a request's overrides always come with its chatflow's policy). References to
    other nodes cannot be overridden, nor the `protected` inputs (the node's spec), enabled or not.
    """
    inputs = dict(node.inputs)
    if not override_config:
        return inputs
    policy = ALLOW_ALL if policy is None else policy
    for key, value in override_config.items():
        if key in REQUEST_KEYS or key in protected or key not in node.param_names:
            continue
        if reference_target(inputs.get(key)) is not None:
            continue
        chosen = _value_for(node, inputs.get(key), value)
        if chosen is _NOT_FOR_THIS_NODE:
            continue
        if not policy.allows_input(node, key):
            refused_input(policy, node, key)
            continue
        inputs[key] = chosen
    return inputs


def _value_for(node: GraphNode, current: Any, value: Any) -> Any:
    """What an override value sets on this node, or `_NOT_FOR_THIS_NODE`."""
    if isinstance(value, Mapping) and value and all(isinstance(k, str) for k in value):
        if node.id in value:
            return value[node.id]
        if node.label in value:
            return value[node.label]
        if isinstance(current, Mapping | str) and not _looks_keyed_by_node(value):
            return value  # an object-valued input (e.g. promptValues) replaced whole
        return _NOT_FOR_THIS_NODE
    return value


def _looks_keyed_by_node(value: Mapping[str, Any]) -> bool:
    return all("_" in key and key.rsplit("_", 1)[-1].isdigit() for key in value)


def build_answerer(
    graph: FlowGraph,
    catalog: NodeCatalog,
    override_config: Mapping[str, Any] | None = None,
    *,
    policy: OverridePolicy | None = None,
    inject: Mapping[str, Mapping[str, Any]] | None = None,
) -> Answerer:
    """Build every node in dependency order and return the answering node's instance; `inject` as
    for `build_nodes` (the server's own inputs, such as the nodes' credential fields)."""
    instances = build_nodes(graph, catalog, override_config, inject, policy=policy)
    answerer = instances[graph.ending_node_id]
    if not isinstance(answerer, Answerer):
        raise GraphError(f"Node {graph.ending_node_id} cannot answer questions", graph.ending_node_id)
    return answerer


def build_nodes(
    graph: FlowGraph,
    catalog: NodeCatalog,
    override_config: Mapping[str, Any] | None = None,
    inject: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    policy: OverridePolicy | None = None,
) -> dict[str, object]:
    """Every node's instance, by node id, built in dependency order.

    `inject` sets inputs of given nodes (node id → input → value) after the overrides: the server's
    own values, such as uploaded files for a loader, which no request can give. `policy` is the
    chatflow's (`OverridePolicy.from_api_config`); see `node_inputs` for None.
    """
    instances: dict[str, object] = {}
    for node_id in graph.order:
        node = graph.nodes[node_id]
        inputs = node_inputs(node, override_config, catalog.protected(node.name), policy)
        if inject and node_id in inject:
            inputs.update(inject[node_id])
        for key, value in inputs.items():
            if isinstance(value, list):
                if any(reference_target(item) for item in value):
                    inputs[key] = [_resolve(item, instances, node) for item in value]
            elif reference_target(value) is not None:
                inputs[key] = _resolve(value, instances, node)
        try:
            instances[node_id] = catalog.build(node.name, node_id, inputs)
        except NodeConfigError as exc:
            if exc.node_id is None:
                raise NodeConfigError(f"Node {node_id}: {exc.message}", node_id) from None
            raise
    return instances


def _resolve(value: Any, instances: Mapping[str, object], node: GraphNode) -> Any:
    target = reference_target(value)
    if target is None:
        return value
    if target not in instances:  # the graph's order puts dependencies first; this is a guard
        raise GraphError(f"Node {node.id} refers to {target!r}, which is not built", node.id)
    return instances[target]
