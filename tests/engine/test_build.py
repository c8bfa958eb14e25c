"""Building node instances from a graph, with Flowise's per-request overrides."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streamwise.engine.build import build_answerer, node_inputs
from streamwise.engine.graph import FlowGraph, parse_flow_data
from streamwise.errors import NodeConfigError
from streamwise.nodes.chains.conversation_chain import ConversationChain
from streamwise.nodes.registry import default_registry
from tests.support.fake_model import SPEC as FAKE_SPEC
from tests.support.fake_model import ScriptedFakeChatModel
from tests.support.flows import chain_flow, fake_flow, openai_model

registry = default_registry(extra=[FAKE_SPEC])


def inputs_of(graph: FlowGraph, node_id: str, override: dict[str, Any]) -> dict[str, Any]:
    node = graph.nodes[node_id]
    return node_inputs(node, override, registry.protected(node.name))


def test_references_become_instances() -> None:
    answerer = build_answerer(parse_flow_data(fake_flow(memory="bufferMemory"), registry), registry)
    assert isinstance(answerer, ConversationChain)
    assert isinstance(answerer.model, ScriptedFakeChatModel)
    assert answerer.memory is not None and answerer.memory.memory_type == "Buffer Memory"


def test_override_applies_to_every_node_with_that_input() -> None:
    graph = parse_flow_data(fake_flow(delayMs=0), registry)
    inputs = node_inputs(
        graph.nodes["fake_0"],
        {"delayMs": 7, "sessionId": "s"},
        registry.protected(graph.nodes["fake_0"].name),
    )
    assert inputs["delayMs"] == 7
    assert "sessionId" not in inputs


def test_override_keyed_by_node_id_applies_to_that_node_only() -> None:
    graph = parse_flow_data(fake_flow(delayMs=0), registry)
    assert (
        node_inputs(
            graph.nodes["fake_0"], {"delayMs": {"fake_0": 3}}, registry.protected(graph.nodes["fake_0"].name)
        )["delayMs"]
        == 3
    )
    assert (
        node_inputs(
            graph.nodes["fake_0"], {"delayMs": {"other_1": 3}}, registry.protected(graph.nodes["fake_0"].name)
        )["delayMs"]
        == 0
    )


def test_system_message_override_reaches_the_chain() -> None:
    graph = parse_flow_data(fake_flow(), registry)
    answerer = build_answerer(graph, registry, {"systemMessagePrompt": "Talk like a pirate."})
    assert isinstance(answerer, ConversationChain)
    assert answerer.system_message == "Talk like a pirate."


def test_references_and_protected_inputs_cannot_be_overridden() -> None:
    graph = parse_flow_data(chain_flow(openai_model("http://127.0.0.1:9/v1")), registry)
    chain_inputs = node_inputs(
        graph.nodes["conversationChain_0"],
        {"model": "x"},
        registry.protected(graph.nodes["conversationChain_0"].name),
    )
    assert chain_inputs["model"] == "{{chatOpenAI_0.data.instance}}"
    model_inputs = node_inputs(
        graph.nodes["chatOpenAI_0"],
        {"basePath": "http://evil.example/v1"},
        registry.protected(graph.nodes["chatOpenAI_0"].name),
    )
    assert model_inputs["basePath"] == "http://127.0.0.1:9/v1"


def test_a_bad_input_is_a_config_error_naming_the_node() -> None:
    graph = parse_flow_data(fake_flow(delayMs="soon"), registry)
    with pytest.raises(NodeConfigError, match=r"fake_0.*delayMs"):
        build_answerer(graph, registry)


def test_a_model_where_memory_belongs_is_refused() -> None:
    flow = json.loads(fake_flow())
    chain = flow["nodes"][-1]
    chain["data"]["inputs"]["memory"] = "{{fake_0.data.instance}}"
    graph = parse_flow_data(json.dumps(flow), registry)
    with pytest.raises(NodeConfigError, match=r"conversationChain_0.*memory.*Memory"):
        build_answerer(graph, registry)
