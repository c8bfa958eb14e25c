"""flowData validation: what runs, and what is refused with the culprit named."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise.engine.graph import GraphLimits, parse_flow_data
from streamwise.errors import GraphError, LimitExceeded
from streamwise.nodes.registry import default_registry
from tests.support.fake_model import SPEC as FAKE_SPEC
from tests.support.flows import edge, fake_flow, fake_model, node, ref

registry = default_registry(extra=[FAKE_SPEC])


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


def _chain_of_prompts(count: int) -> dict[str, Any]:
    """`count` nodes in one long dependency chain, ending in an LLM chain: the worst case for ordering."""
    nodes = [fake_model()]
    for index in range(count - 2):
        previous = "fake_0" if index == 0 else f"promptTemplate_{index - 1}"
        nodes.append(
            node(
                f"promptTemplate_{index}",
                "promptTemplate",
                "Prompts",
                {"template": "{q}", "x": ref(previous)},
            )
        )
    last = f"promptTemplate_{count - 3}"
    nodes.append(node("llmChain_0", "llmChain", "Chains", {"model": ref("fake_0"), "prompt": ref(last)}))
    return {"nodes": nodes, "edges": []}


def test_the_largest_accepted_graph_validates_in_linear_time() -> None:
    limits = GraphLimits(max_nodes=20_000, max_edges=5_000)
    started = time.perf_counter()
    graph = parse_flow_data(json.dumps(_chain_of_prompts(20_000)), registry, limits)
    elapsed = time.perf_counter() - started
    assert graph.ending_node_id == "llmChain_0" and len(graph.order) == 20_000
    assert elapsed < 10  # generous: linear takes well under a second here; quadratic took 12 s


def test_a_graph_over_the_limits_is_refused_before_it_is_validated() -> None:
    flow = _chain_of_prompts(1_001)
    message = r"1,001 nodes; the limit is 1,000 \(STREAMWISE_MAX_FLOW_NODES\)"
    with pytest.raises(LimitExceeded, match=message):
        parse_flow_data(flow, registry, GraphLimits(max_nodes=1_000))
    flow["edges"] = [edge("fake_0", "llmChain_0", "model")] * 11
    with pytest.raises(LimitExceeded, match=r"11 edges; the limit is 10"):
        parse_flow_data(flow, registry, GraphLimits(max_nodes=5_000, max_edges=10))


@pytest.mark.parametrize(
    ("bad_edge", "message"),
    [
        (
            {"id": "e1", "source": ["fake_0"], "target": "conversationChain_0"},
            r"Edge e1: field 'source'.*list",
        ),
        ({"source": "fake_0"}, r"Edge #0: field 'target': field required"),
        ("fake_0->chain", r"Edge #0 must be an object"),
        ({"source": "fake_0", "target": "conversationChain_0", "sourceHandle": 5}, r"sourceHandle"),
    ],
)
def test_a_malformed_edge_is_refused_naming_it(bad_edge: object, message: str) -> None:
    flow = json.loads(fake_flow())
    flow["edges"] = [bad_edge]
    with pytest.raises(GraphError, match=message):
        parse_flow_data(json.dumps(flow), registry)


def test_deeply_nested_flow_data_is_refused() -> None:
    deep = '{"nodes": [' + "[" * 1000 + "]" * 1000 + "]}"
    with pytest.raises(GraphError, match="nested deeper"):
        parse_flow_data(deep, registry)


node_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=8) | st.integers() | st.none(),
        "data": st.none()
        | st.integers()
        | st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(["llmChain", "conversationChain", "scriptedFakeChatModel", "x", ""])
                | st.integers(),
                "inputs": st.none()
                | st.integers()
                | st.dictionaries(st.text(max_size=6), st.text(max_size=30) | st.integers() | st.none()),
                "inputParams": st.none()
                | st.integers()
                | st.lists(st.dictionaries(st.text(max_size=4), st.text())),
                "label": st.text(max_size=5) | st.integers(),
            },
        ),
    },
)
edge_like = st.dictionaries(
    st.sampled_from(["source", "target", "sourceHandle", "id"]),
    st.text(max_size=8) | st.lists(st.text()) | st.none(),
)


@settings(max_examples=400, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "nodes": st.lists(node_like, max_size=6) | st.integers() | st.text(),
            "edges": st.lists(edge_like, max_size=6) | st.none() | st.integers(),
        },
    )
)
def test_any_flow_data_is_a_graph_or_a_flow_error(flow: dict[str, Any]) -> None:
    try:
        graph = parse_flow_data(json.dumps(flow), registry)
    except (GraphError, LimitExceeded) as exc:
        assert exc.message
        return
    assert graph.ending_node_id in graph.nodes
