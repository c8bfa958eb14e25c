"""flowData validation: what runs, and what is refused with the culprit named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streamwise.engine.graph import parse_flow_data
from streamwise.errors import GraphError
from streamwise.nodes.registry import default_registry
from tests.support.flows import edge, fake_flow, fake_model, node, ref

registry = default_registry()


def _flow(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> str:
    return json.dumps({"nodes": nodes, "edges": edges})


def test_a_conversation_flow_parses_with_dependencies_first() -> None:
    graph = parse_flow_data(fake_flow(memory="bufferMemory"), registry)
    assert graph.ending_node_id == "conversationChain_0"
    assert graph.order.index("fake_0") < graph.order.index("conversationChain_0")
    assert graph.order.index("memory_0") < graph.order.index("conversationChain_0")


def test_unknown_node_type_is_named() -> None:
    flow = _flow([node("weird_0", "superSecretNode", "Chains", {})], [])
    with pytest.raises(GraphError, match=r"weird_0.*superSecretNode") as caught:
        parse_flow_data(flow, registry)
    assert caught.value.node_id == "weird_0"


def test_dangling_reference_names_the_node_and_the_missing_target() -> None:
    chain = node("conversationChain_0", "conversationChain", "Chains", {"model": ref("ghost_0")})
    with pytest.raises(GraphError, match=r"conversationChain_0.*ghost_0"):
        parse_flow_data(_flow([chain], []), registry)


def test_edge_to_missing_node_is_refused() -> None:
    model = fake_model()
    chain = node("conversationChain_0", "conversationChain", "Chains", {"model": ref("fake_0")})
    with pytest.raises(GraphError, match=r"ghost"):
        parse_flow_data(_flow([model, chain], [edge("ghost", "conversationChain_0", "model")]), registry)


def test_a_cycle_is_refused_naming_a_node_on_it() -> None:
    a = node("llmChain_0", "llmChain", "Chains", {"model": ref("llmChain_1")})
    b = node("llmChain_1", "llmChain", "Chains", {"model": ref("llmChain_0")})
    with pytest.raises(GraphError, match=r"cycle") as caught:
        parse_flow_data(_flow([a, b], []), registry)
    assert caught.value.node_id in {"llmChain_0", "llmChain_1"}


def test_self_loop_edge_is_refused() -> None:
    chain = node("conversationChain_0", "conversationChain", "Chains", {})
    with pytest.raises(GraphError, match=r"itself"):
        parse_flow_data(
            _flow([chain], [edge("conversationChain_0", "conversationChain_0", "model")]), registry
        )


def test_no_answering_node_is_refused() -> None:
    with pytest.raises(GraphError, match=r"no answering node"):
        parse_flow_data(_flow([fake_model()], []), registry)


def test_two_answering_nodes_are_refused() -> None:
    model = fake_model()
    a = node("llmChain_0", "llmChain", "Chains", {"model": ref("fake_0")})
    b = node("llmChain_1", "llmChain", "Chains", {"model": ref("fake_0")})
    with pytest.raises(GraphError, match=r"more than one answering node"):
        parse_flow_data(_flow([model, a, b], []), registry)


@pytest.mark.parametrize(
    ("flow_data", "message"),
    [
        ("{nope", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"nodes": []}', "no nodes"),
        ('{"nodes": [{"data": {}}]}', r"Node #0: field 'id': field required"),
        ('{"nodes": [{"id": "a"}]}', r"Node a: field 'data': field required"),
        ('{"nodes": [{"id": "a", "data": {"inputs": {}}}]}', r"Node a: field 'data.name': field required"),
        (
            '{"nodes": [{"id": "a", "data": {"name": "llmChain", "inputs": 3}}]}',
            r"Node a: field 'data.inputs': .*dictionary \(got int\)",
        ),
        (
            '{"nodes": [{"id": "a", "data": {"name": "llmChain", "inputParams": 5}}]}',
            r"Node a: .*inputParams",
        ),
        ('{"nodes": [5]}', r"Node #0 must be an object"),
        ('{"nodes": [{"id": 7, "data": {"name": "llmChain"}}]}', r"Node #0: field 'id'.*\(got int\)"),
    ],
)
def test_malformed_flow_data_is_refused(flow_data: str, message: str) -> None:
    with pytest.raises(GraphError, match=message):
        parse_flow_data(flow_data, registry)
