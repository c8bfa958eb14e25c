"""A chatflow's override policy (its `apiConfig`, as Flowise 2.x+ reads it) and the builds that obey it."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from streamwise.engine import indexing
from streamwise.engine.build import build_answerer, node_inputs
from streamwise.engine.graph import FlowGraph, parse_flow_data
from streamwise.engine.overrides import (
    ALLOW_ALL,
    CACHE_MAX_CHARS,
    NO_OVERRIDES,
    OverridePolicy,
    permitted_variables,
)
from streamwise.nodes.chains.conversation_chain import ConversationChain
from streamwise.nodes.registry import default_registry
from tests.support.fake_model import SPEC as FAKE_SPEC
from tests.support.fake_retrieval import SPECS as RETRIEVAL_SPECS
from tests.support.fake_retrieval import FakeLoader, FakeVectorStore
from tests.support.flows import chain_flow, fake_flow, fake_model, openai_model, rag_flow

registry = default_registry(extra=[FAKE_SPEC, *RETRIEVAL_SPECS])

# What Flowise's "Override Configuration" dialog saves (it keeps only the enabled entries), next to
# the other settings apiConfig holds.
FLOWISE_API_CONFIG = json.dumps(
    {
        "rateLimit": {"status": False},
        "overrideConfig": {
            "status": True,
            "nodes": {
                "ChatOpenAI": [
                    {"label": "Temperature", "name": "temperature", "type": "number", "enabled": True},
                    {"label": "Max Tokens", "name": "maxTokens", "type": "number", "enabled": True},
                ],
                "Conversation Chain": [
                    {
                        "label": "System Message",
                        "name": "systemMessagePrompt",
                        "type": "string",
                        "enabled": True,
                    }
                ],
            },
            "variables": [{"id": "6a1e6c1f", "name": "tone", "type": "static", "enabled": True}],
        },
    }
)


def labelled(flow_data: str, **labels: str) -> FlowGraph:
    """The graph with Flowise's display labels (node id → label), as its exports have them."""
    flow = json.loads(flow_data)
    for item in flow["nodes"]:
        if item["id"] in labels:
            item["data"]["label"] = labels[item["id"]]
    return parse_flow_data(json.dumps(flow), registry)


def inputs_of(
    graph: FlowGraph, node_id: str, override: dict[str, Any], policy: OverridePolicy | None
) -> dict[str, Any]:
    node = graph.nodes[node_id]
    return node_inputs(node, override, registry.protected(node.name), policy)


def api_config(nodes: dict[str, list[str]], variables: tuple[str, ...] = (), status: object = True) -> str:
    section = {
        "status": status,
        "nodes": {
            label: [{"name": name, "enabled": True} for name in names] for label, names in nodes.items()
        },
        "variables": [{"name": name, "enabled": True} for name in variables],
    }
    return json.dumps({"overrideConfig": section})


def chain_graph() -> FlowGraph:
    return labelled(
        chain_flow(openai_model("http://127.0.0.1:9/v1", temperature=0.4, maxTokens=100)),
        chatOpenAI_0="ChatOpenAI",
        conversationChain_0="Conversation Chain",
    )


# Parsing


def test_an_api_config_from_flowise_enables_its_inputs_by_node_label_and_its_variables() -> None:
    policy = OverridePolicy.from_api_config(FLOWISE_API_CONFIG)
    graph = chain_graph()
    model, chain = graph.nodes["chatOpenAI_0"], graph.nodes["conversationChain_0"]
    assert policy.status is True
    assert policy.allows_input(model, "temperature") and policy.allows_input(model, "maxTokens")
    assert policy.allows_input(chain, "systemMessagePrompt")
    assert not policy.allows_input(model, "topP")
    assert not policy.allows_input(chain, "temperature")  # enabled on ChatOpenAI, not on the chain
    assert policy.allows_variable("tone") and not policy.allows_variable("region")


def test_inputs_are_enabled_by_label_not_by_node_name_or_id() -> None:
    graph = chain_graph()
    model = graph.nodes["chatOpenAI_0"]
    for key in ("chatOpenAI", "chatOpenAI_0"):
        assert not OverridePolicy.from_api_config(api_config({key: ["temperature"]})).allows_input(
            model, "temperature"
        )


def test_a_node_without_a_label_goes_by_its_name() -> None:
    graph = parse_flow_data(fake_flow(delayMs=0), registry)  # the test flows' labels are their names
    policy = OverridePolicy.from_api_config(api_config({"scriptedFakeChatModel": ["delayMs"]}))
    assert policy.allows_input(graph.nodes["fake_0"], "delayMs")


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({"overrideConfig": {"status": False}}),  # what Flowise saves when overrides are off
        api_config({"ChatOpenAI": ["temperature"]}, ("tone",), status=False),
        json.dumps({"overrideConfig": {"nodes": {"ChatOpenAI": [{"name": "temperature", "enabled": True}]}}}),
        api_config({"ChatOpenAI": ["temperature"]}, ("tone",), status="true"),
        api_config({"ChatOpenAI": ["temperature"]}, ("tone",), status=1),
        json.dumps({"rateLimit": {"status": True}}),
        None,
        "",
        "  ",
    ],
    ids=[
        "saved-off",
        "off-with-entries",
        "no-status",
        "status-text",
        "status-number",
        "no-overrideConfig",
        "null",
        "empty",
        "blank",
    ],
)
def test_without_status_true_nothing_is_enabled(raw: str | None) -> None:
    policy = OverridePolicy.from_api_config(raw)
    assert policy == NO_OVERRIDES
    assert not policy.allows_input(chain_graph().nodes["chatOpenAI_0"], "temperature")
    assert not policy.allows_variable("tone")


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        '{"overrideConfig": ',
        "[]",
        '"text"',
        "null",
        json.dumps({"overrideConfig": "on"}),
        json.dumps({"overrideConfig": {"status": True, "nodes": [["ChatOpenAI", "temperature"]]}}),
        json.dumps({"overrideConfig": {"status": True, "nodes": {"ChatOpenAI": "temperature"}}}),
        json.dumps({"overrideConfig": {"status": True, "nodes": {"ChatOpenAI": [None, 3, ["temperature"]]}}}),
        json.dumps(
            {"overrideConfig": {"status": True, "nodes": {"ChatOpenAI": [{"name": 7, "enabled": True}]}}}
        ),
        json.dumps({"overrideConfig": {"status": True, "variables": {"tone": True}}}),
        json.dumps({"overrideConfig": {"status": True, "variables": [{"name": "tone", "enabled": "yes"}]}}),
        "[" * 100 + "]" * 100,
    ],
)
def test_a_malformed_api_config_enables_nothing_and_never_raises(raw: str) -> None:
    policy = OverridePolicy.from_api_config(raw)
    assert not policy.allows_input(chain_graph().nodes["chatOpenAI_0"], "temperature")
    assert not policy.allows_variable("tone")


def test_an_entry_is_on_only_when_enabled_is_true_and_the_first_entry_for_a_name_decides() -> None:
    params = [
        {"name": "temperature", "enabled": False},
        {"name": "temperature", "enabled": True},
        {"name": "maxTokens", "enabled": True},
        {"name": "maxTokens", "enabled": False},
        {"name": "topP"},
    ]
    raw = json.dumps({"overrideConfig": {"status": True, "nodes": {"ChatOpenAI": params}}})
    model = chain_graph().nodes["chatOpenAI_0"]
    policy = OverridePolicy.from_api_config(raw)
    assert [policy.allows_input(model, name) for name in ("temperature", "maxTokens", "topP")] == [
        False,
        True,
        False,
    ]


def test_policies_are_cached_by_text_and_a_long_text_is_parsed_each_time() -> None:
    assert OverridePolicy.from_api_config(FLOWISE_API_CONFIG) is OverridePolicy.from_api_config(
        FLOWISE_API_CONFIG
    )
    long = json.dumps({"padding": "x" * CACHE_MAX_CHARS, **json.loads(api_config({"ChatOpenAI": ["topP"]}))})
    first, second = OverridePolicy.from_api_config(long), OverridePolicy.from_api_config(long)
    assert first == second and first is not second
    assert first.allows_input(chain_graph().nodes["chatOpenAI_0"], "topP")


# Building with a policy


def test_only_enabled_inputs_are_overridden() -> None:
    graph = chain_graph()
    policy = OverridePolicy.from_api_config(api_config({"ChatOpenAI": ["temperature"]}))
    override = {"temperature": 0.05, "maxTokens": 5, "systemMessagePrompt": "Be a pirate."}
    model = inputs_of(graph, "chatOpenAI_0", override, policy)
    assert (model["temperature"], model["maxTokens"]) == (0.05, 100)
    assert inputs_of(graph, "conversationChain_0", override, policy)["systemMessagePrompt"] == "Be brief."


def test_overrides_keyed_by_node_id_or_label_are_gated_the_same_way() -> None:
    graph = chain_graph()
    on = OverridePolicy.from_api_config(api_config({"ChatOpenAI": ["temperature"]}))
    off = OverridePolicy.from_api_config(api_config({"ChatOpenAI": ["maxTokens"]}))
    for override in ({"temperature": {"chatOpenAI_0": 0.1}}, {"temperature": {"ChatOpenAI": 0.1}}):
        assert inputs_of(graph, "chatOpenAI_0", override, on)["temperature"] == 0.1
        assert inputs_of(graph, "chatOpenAI_0", override, off)["temperature"] == 0.4


def test_an_object_value_replacing_an_object_input_is_gated_too() -> None:
    flow = json.loads(chain_flow(fake_model(tokens=["a"])))
    flow["nodes"][-1]["data"]["inputs"]["promptValues"] = {"topic": "tea"}
    flow["nodes"][-1]["data"]["inputParams"].append({"name": "promptValues"})
    graph = parse_flow_data(json.dumps(flow), registry)
    override = {"promptValues": {"topic": "coffee"}}
    assert inputs_of(graph, "conversationChain_0", override, NO_OVERRIDES)["promptValues"] == {"topic": "tea"}
    allowed = OverridePolicy.from_api_config(api_config({"conversationChain": ["promptValues"]}))
    assert inputs_of(graph, "conversationChain_0", override, allowed)["promptValues"] == {"topic": "coffee"}


def test_protected_inputs_and_references_stay_as_saved_even_when_enabled() -> None:
    graph = chain_graph()
    policy = OverridePolicy.from_api_config(
        api_config({"ChatOpenAI": ["basePath", "credential", "temperature"], "Conversation Chain": ["model"]})
    )
    model = inputs_of(
        graph,
        "chatOpenAI_0",
        {"basePath": "http://evil.example/v1", "credential": "x", "temperature": 0},
        policy,
    )
    assert model["basePath"] == "http://127.0.0.1:9/v1" and model["credential"] == ""
    assert model["temperature"] == 0
    chain = inputs_of(graph, "conversationChain_0", {"model": "x"}, policy)
    assert chain["model"] == "{{chatOpenAI_0.data.instance}}"


def test_session_id_is_no_node_input_whatever_the_policy() -> None:
    graph = parse_flow_data(fake_flow(memory="bufferMemory"), registry)
    for policy in (
        NO_OVERRIDES,
        ALLOW_ALL,
        OverridePolicy.from_api_config(api_config({"bufferMemory": ["sessionId"]})),
    ):
        assert "sessionId" not in inputs_of(graph, "memory_0", {"sessionId": "s1"}, policy)


def test_no_policy_is_the_engines_own_call_and_lets_every_input_through() -> None:
    graph = chain_graph()
    override = {"temperature": 0.05, "systemMessagePrompt": "Be a pirate."}
    assert inputs_of(graph, "chatOpenAI_0", override, None)["temperature"] == 0.05
    assert inputs_of(graph, "chatOpenAI_0", override, ALLOW_ALL)["temperature"] == 0.05
    assert inputs_of(graph, "chatOpenAI_0", override, NO_OVERRIDES)["temperature"] == 0.4


def test_build_answerer_applies_the_policy() -> None:
    graph = labelled(fake_flow(), conversationChain_0="Conversation Chain")
    override = {"systemMessagePrompt": "Talk like a pirate."}
    enabled = OverridePolicy.from_api_config(FLOWISE_API_CONFIG)
    built = build_answerer(graph, registry, override, policy=enabled)
    refused = build_answerer(graph, registry, override, policy=NO_OVERRIDES)
    assert isinstance(built, ConversationChain) and isinstance(refused, ConversationChain)
    assert built.system_message == "Talk like a pirate."
    assert refused.system_message == "Be brief."


def test_an_upsert_plan_applies_the_policy_to_loader_inputs() -> None:
    graph = parse_flow_data(rag_flow(fake_model(), texts=["saved"]), registry)
    override = {"texts": json.dumps(["given"])}

    def planned(policy: OverridePolicy) -> list[str]:
        [target] = indexing.plan(graph, registry, override=override, override_policy=policy)
        assert isinstance(target.node, FakeVectorStore)
        loader = target.node.loaders[0]
        assert isinstance(loader, FakeLoader)
        return loader.texts

    assert planned(NO_OVERRIDES) == ["saved"]
    assert planned(OverridePolicy.from_api_config(api_config({"fakeTextLoader": ["texts"]}))) == ["given"]


# Variables


def test_only_enabled_variables_are_let_through() -> None:
    policy = OverridePolicy.from_api_config(FLOWISE_API_CONFIG)
    override = {"vars": {"tone": "formal", "region": "eu"}, "temperature": 0.1}
    assert permitted_variables(override, policy) == {"tone": "formal"}
    assert permitted_variables(override, NO_OVERRIDES) == {}
    assert permitted_variables(override, ALLOW_ALL) == {"tone": "formal", "region": "eu"}
    assert permitted_variables({"vars": "tone=formal"}, policy) == {}
    assert permitted_variables(None, policy) == {}


def test_vars_is_never_taken_for_a_node_input() -> None:
    flow = json.loads(fake_flow(tokens=["a"]))
    flow["nodes"][0]["data"]["inputParams"].append({"name": "vars"})
    graph = parse_flow_data(json.dumps(flow), registry)
    assert "vars" not in inputs_of(graph, "fake_0", {"vars": {"tone": "formal"}}, ALLOW_ALL)


# Logging


def test_what_the_policy_refuses_is_logged_at_debug_by_key_never_by_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph = chain_graph()
    policy = OverridePolicy.from_api_config(api_config({"ChatOpenAI": ["temperature"]}, ("tone",)))
    secret = "s3cr3t-value"
    override = {"temperature": 0.1, "maxTokens": secret, "vars": {"tone": secret, "region": secret}}
    with caplog.at_level(logging.DEBUG, logger="streamwise.overrides"):
        inputs_of(graph, "chatOpenAI_0", override, policy)
        permitted_variables(override, policy)
    logged = [record for record in caplog.records if record.name == "streamwise.overrides"]
    messages = [record.getMessage() for record in logged]
    assert all(record.levelno == logging.DEBUG for record in logged)
    assert any("'maxTokens'" in message and "chatOpenAI_0" in message for message in messages)
    assert any("'region'" in message for message in messages)
    assert not any("temperature" in message or "'tone'" in message for message in messages)
    assert not any(secret in message for message in messages)


def test_a_chatflow_with_overrides_off_says_so_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    graph = chain_graph()
    with caplog.at_level(logging.DEBUG, logger="streamwise.overrides"):
        inputs_of(graph, "chatOpenAI_0", {"temperature": 0.1}, NO_OVERRIDES)
    [message] = [record.getMessage() for record in caplog.records if record.name == "streamwise.overrides"]
    assert "'temperature'" in message and "status is not true" in message and "0.1" not in message


def test_a_huge_key_is_cut_short_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    flow = json.loads(fake_flow(tokens=["a"]))
    key = "k" * 10_000
    flow["nodes"][0]["data"]["inputParams"].append({"name": key})
    graph = parse_flow_data(json.dumps(flow), registry)
    with caplog.at_level(logging.DEBUG, logger="streamwise.overrides"):
        inputs_of(graph, "fake_0", {key: 1}, NO_OVERRIDES)
    [message] = [record.getMessage() for record in caplog.records if record.name == "streamwise.overrides"]
    assert len(message) < 500
