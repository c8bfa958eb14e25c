"""STREAMWISE_MODEL_ALLOWED_HOSTS: which model servers nodes may be pointed at, checked when they are
built (so at save time), with errors that name the node and the host but nothing else of the URL."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest

from streamwise.errors import NodeConfigError
from streamwise.nodes.embeddings import ollama_embeddings, openai_embeddings
from streamwise.nodes.model_hosts import check_model_host, host_allowed
from streamwise.nodes.models import chat_ollama, chat_openai
from streamwise.nodes.services import NodeServices
from tests.api.helpers import create_flow
from tests.support.flows import chain_flow, openai_model

Builder = Callable[[str, Mapping[str, Any], NodeServices], object]


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("api.openai.com", ["api.openai.com"], True),
        ("API.OpenAI.com", ["api.openai.COM"], True),
        ("api.openai.com.", ["api.openai.com"], True),
        ("models.example.com", ["api.openai.com"], False),
        ("gpu1.models.example.com", ["*.example.com"], True),
        ("models.example.com", ["*.example.com"], True),
        ("example.com", ["*.example.com"], False),  # subdomains only
        ("evilexample.com", ["*.example.com"], False),
        ("example.com.evil.net", ["*.example.com"], False),
        ("localhost", ["localhost:11434"], True),  # a port in an entry does not count
        ("::1", ["[::1]"], True),
        ("10.0.0.5", ["10.0.0.5", "*.example.com"], True),
        ("anything.test", ["*"], True),
        ("anything.test", [], True),  # empty: any host
        ("", ["api.openai.com"], False),
    ],
)
def test_host_matching(host: str, allowed: list[str], expected: bool) -> None:
    assert host_allowed(host, allowed) is expected


@pytest.mark.parametrize(
    "url",
    [
        "http://gpu1.models.example.com:8000/v1",
        "HTTPS://GPU1.Models.Example.com/v1",
        "http://user:pass@gpu1.models.example.com/v1?token=abc",
    ],
)
def test_the_url_port_case_and_userinfo_do_not_count(url: str) -> None:
    check_model_host("chatOpenAI_0", "ChatOpenAI", url, ["*.example.com"])


def test_a_refusal_names_the_node_and_host_but_no_secret_of_the_url() -> None:
    url = "https://alice:hunter2@evil.example.net:8443/v1?api_key=sk-query-secret#frag"

    with pytest.raises(NodeConfigError) as caught:
        check_model_host("chatOpenAI_0", "ChatOpenAI", url, ["api.openai.com"])

    message = str(caught.value)
    assert caught.value.node_id == "chatOpenAI_0"
    assert message.startswith("Node chatOpenAI_0: ChatOpenAI may not send requests to evil.example.net")
    assert "STREAMWISE_MODEL_ALLOWED_HOSTS" in message
    for secret in ("alice", "hunter2", "sk-query-secret", "8443", "/v1", "frag"):
        assert secret not in message


@pytest.mark.parametrize("url", ["localhost:11434", "not a url", "ftp://models.example.com/", "http://[::1"])
def test_an_address_without_an_http_host_is_refused_when_a_list_is_set(url: str) -> None:
    with pytest.raises(NodeConfigError, match="not an http\\(s\\) URL with a host"):
        check_model_host("chatOllama_0", "ChatOllama", url, ["localhost"])
    check_model_host("chatOllama_0", "ChatOllama", url, [])  # no list: nothing is checked


NODES: list[tuple[Builder, str, dict[str, Any]]] = [
    (chat_openai.build, "basePath", {}),
    (chat_openai.build, "basepath", {}),
    (openai_embeddings.build, "basePath", {}),
    (chat_ollama.build, "baseUrl", {"modelName": "llama3"}),
    (ollama_embeddings.build, "baseUrl", {}),
]


@pytest.mark.parametrize(("build", "url_input", "inputs"), NODES)
def test_every_model_node_checks_its_server(
    services: NodeServices, build: Builder, url_input: str, inputs: dict[str, Any]
) -> None:
    services.model_allowed_hosts = ("*.models.example.com", "localhost")

    build("node_0", {**inputs, url_input: "http://gpu1.models.example.com:8000/v1"}, services)
    build("node_0", {**inputs, url_input: "http://LOCALHOST:11434"}, services)
    with pytest.raises(NodeConfigError) as caught:
        build("node_0", {**inputs, url_input: "http://models.example.com/v1"}, services)

    assert caught.value.node_id == "node_0"
    assert "may not send requests to models.example.com" in str(caught.value)


@pytest.mark.parametrize("build", [chat_openai.build, openai_embeddings.build])
def test_the_openai_nodes_check_the_default_server_too(services: NodeServices, build: Builder) -> None:
    services.model_allowed_hosts = ("*.internal.test",)

    with pytest.raises(NodeConfigError, match=r"may not send requests to api\.openai\.com"):
        build("node_0", {}, services)  # OpenAI itself, the last default
    services.openai_base_url = "http://vllm.internal.test/v1"
    build("node_0", {}, services)
    services.openai_base_url = "http://vllm.elsewhere.test/v1"
    with pytest.raises(NodeConfigError, match=r"vllm\.elsewhere\.test"):
        build("node_0", {}, services)


@pytest.mark.parametrize("build", [chat_ollama.build, ollama_embeddings.build])
def test_the_ollama_nodes_check_their_default_server(services: NodeServices, build: Builder) -> None:
    services.model_allowed_hosts = ("api.openai.com",)

    with pytest.raises(NodeConfigError, match="may not send requests to localhost"):
        build("node_0", {"modelName": "llama3"}, services)


def test_an_empty_list_allows_any_server(services: NodeServices) -> None:
    assert services.model_allowed_hosts == ()
    chat_openai.build("node_0", {"basePath": "http://anywhere.test/v1"}, services)
    chat_ollama.build("node_0", {"baseUrl": "anything", "modelName": "llama3"}, services)


class TestAtSaveTime:
    """The app builds every node when a chatflow is saved: a server off the list is a 400 then."""

    @pytest.fixture
    def services(self) -> NodeServices:
        return NodeServices(env={}, model_allowed_hosts=("127.0.0.1", "*.models.example.com"))

    async def test_a_chatflow_pointing_a_model_elsewhere_is_not_saved(
        self, client: httpx.AsyncClient
    ) -> None:
        flow = chain_flow(openai_model("https://user:pw@evil.example.net/v1?key=sk-secret"))

        response = await client.post("/api/v1/chatflows", json={"name": "x", "flowData": flow})

        assert response.status_code == 400, response.text
        message = response.json()["message"]
        assert message.startswith("Node chatOpenAI_0: ChatOpenAI may not send requests to evil.example.net")
        assert "sk-secret" not in response.text and "pw" not in message
        assert (await client.get("/api/v1/chatflows")).json() == []

    async def test_a_chatflow_on_an_allowed_server_is_saved(self, client: httpx.AsyncClient) -> None:
        await create_flow(client, chain_flow(openai_model("http://127.0.0.1:9/v1")))
        await create_flow(client, chain_flow(openai_model("https://gpu1.models.example.com/v1")))
