"""Small Flowise-format graphs for tests, built the way Flowise exports them."""

from __future__ import annotations

import json
from typing import Any

import httpx


def node(node_id: str, name: str, category: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "customNode",
        "position": {"x": 0, "y": 0},
        "data": {
            "id": node_id,
            "name": name,
            "label": name,
            "category": category,
            "inputs": inputs,
            "inputParams": [{"name": key} for key in inputs],
        },
    }


def edge(source: str, target: str, target_input: str) -> dict[str, Any]:
    return {
        "id": f"{source}-{target}-{target_input}",
        "source": source,
        "target": target,
        "sourceHandle": f"{source}-output",
        "targetHandle": f"{target}-input-{target_input}",
    }


def ref(node_id: str) -> str:
    return "{{" + node_id + ".data.instance}}"


def chain_flow(model: dict[str, Any], *, memory: str | None = None, window: int | None = None) -> str:
    """A conversationChain over `model` (a node dict), with optional memory."""
    nodes = [model]
    edges = [edge(model["id"], "conversationChain_0", "model")]
    chain_inputs: dict[str, Any] = {"model": ref(model["id"]), "systemMessagePrompt": "Be brief."}
    if memory:
        inputs: dict[str, Any] = {"k": window} if window is not None else {}
        nodes.append(node("memory_0", memory, "Memory", inputs))
        edges.append(edge("memory_0", "conversationChain_0", "memory"))
        chain_inputs["memory"] = ref("memory_0")
    nodes.append(node("conversationChain_0", "conversationChain", "Chains", chain_inputs))
    return json.dumps({"nodes": nodes, "edges": edges})


def fake_model(**inputs: Any) -> dict[str, Any]:
    return node("fake_0", "scriptedFakeChatModel", "Chat Models", inputs)


def fake_flow(*, memory: str | None = None, **inputs: Any) -> str:
    return chain_flow(fake_model(**inputs), memory=memory)


def openai_model(base_path: str, **inputs: Any) -> dict[str, Any]:
    return node(
        "chatOpenAI_0",
        "chatOpenAI",
        "Chat Models",
        {"modelName": "stub", "basePath": base_path, "credential": "", "streaming": True, **inputs},
    )


def llm_chain_flow(model: dict[str, Any], template: str = "{question}") -> str:
    prompt = node("promptTemplate_0", "promptTemplate", "Prompts", {"template": template, "promptValues": ""})
    chain = node(
        "llmChain_0",
        "llmChain",
        "Chains",
        {"model": ref(model["id"]), "prompt": ref("promptTemplate_0")},
    )
    edges = [edge(model["id"], "llmChain_0", "model"), edge("promptTemplate_0", "llmChain_0", "prompt")]
    return json.dumps({"nodes": [model, prompt, chain], "edges": edges})


def rag_flow(
    model: dict[str, Any],
    *,
    texts: list[str] | None = None,
    memory: str | None = None,
    chain: str = "conversationalRetrievalQAChain",
    top_k: int = 2,
    return_sources: bool = True,
    embeddings: dict[str, Any] | None = None,
    store: str = "fakeVectorStore",
    store_inputs: dict[str, Any] | None = None,
    **chain_inputs: Any,
) -> str:
    """A loader → vector store (with embeddings) → retrieval chain over `model`, as Flowise wires it."""
    loader = node(
        "fakeTextLoader_0", "fakeTextLoader", "Document Loaders", {"texts": json.dumps(texts or [])}
    )
    embedder = embeddings or node("fakeEmbeddings_0", "fakeEmbeddings", "Embeddings", {})
    vector_store = node(
        "vectorStore_0",
        store,
        "Vector Stores",
        {
            "document": [ref(loader["id"])],
            "embeddings": ref(embedder["id"]),
            "topK": top_k,
            **(store_inputs or {}),
        },
    )
    inputs: dict[str, Any] = {
        "model": ref(model["id"]),
        "vectorStoreRetriever": ref("vectorStore_0"),
        "returnSourceDocuments": return_sources,
        **chain_inputs,
    }
    nodes = [model, loader, embedder, vector_store]
    edges = [
        edge(loader["id"], "vectorStore_0", "document"),
        edge(embedder["id"], "vectorStore_0", "embeddings"),
        edge(model["id"], "chain_0", "model"),
        edge("vectorStore_0", "chain_0", "vectorStoreRetriever"),
    ]
    if memory:
        nodes.append(node("memory_0", memory, "Memory", {}))
        edges.append(edge("memory_0", "chain_0", "memory"))
        inputs["memory"] = ref("memory_0")
    nodes.append(node("chain_0", chain, "Chains", inputs))
    return json.dumps({"nodes": nodes, "edges": edges})


def fake_tool(node_id: str, name: str, **inputs: Any) -> dict[str, Any]:
    return node(node_id, "fakeTool", "Tools", {"name": name, **inputs})


def stub_calls(*rounds: list[tuple[str, str]], **controls: Any) -> str:
    """A stub model name whose answers call tools, round by round (tests/support/stub_tools.py)."""
    from urllib.parse import urlencode

    query = {"calls": json.dumps([[list(call) for call in round_] for round_ in rounds]), **controls}
    return "stub?" + urlencode({key: str(value) for key, value in query.items()})


def agent_flow(
    model: dict[str, Any],
    tools: list[dict[str, Any]],
    *,
    memory: str | None = "bufferMemory",
    **agent_inputs: Any,
) -> str:
    """A toolAgent over `model` with `tools` (node dicts) and, by default, Buffer Memory."""
    inputs: dict[str, Any] = {
        "model": ref(model["id"]),
        "tools": [ref(tool["id"]) for tool in tools],
        **agent_inputs,
    }
    nodes = [model, *tools]
    edges = [edge(model["id"], "toolAgent_0", "model")]
    edges += [edge(tool["id"], "toolAgent_0", "tools") for tool in tools]
    if memory:
        nodes.append(node("memory_0", memory, "Memory", {}))
        inputs["memory"] = ref("memory_0")
        edges.append(edge("memory_0", "toolAgent_0", "memory"))
    nodes.append(node("toolAgent_0", "toolAgent", "Agents", inputs))
    return json.dumps({"nodes": nodes, "edges": edges})


def overrides_enabled(label: str, *inputs: str) -> str:
    """A chatflow's apiConfig text that lets requests override these inputs of the nodes labelled
    `label`, as Flowise 2.x+ asks (no override is applied otherwise)."""
    enabled = [{"name": name, "enabled": True} for name in inputs]
    return json.dumps({"overrideConfig": {"status": True, "nodes": {label: enabled}}})


def enable_overrides(base: str, chatflow_id: str, node_name: str, *inputs: str) -> None:
    """PUT that apiConfig on a live server's chatflow, for the node named `node_name` (by its label)."""
    record = httpx.get(f"{base}/api/v1/chatflows/{chatflow_id}", timeout=10).json()
    nodes = json.loads(record["flowData"])["nodes"]
    label = next(item["data"]["label"] for item in nodes if item["data"]["name"] == node_name)
    response = httpx.put(
        f"{base}/api/v1/chatflows/{chatflow_id}",
        json={"apiConfig": overrides_enabled(label, *inputs)},
        timeout=10,
    )
    assert response.status_code == 200, response.text
