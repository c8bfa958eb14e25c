"""The chatflow a first start creates: a conversation on the embedded local model, with memory."""

from __future__ import annotations

import json
from typing import Any

SEED_NAME = "Local chat (embedded SmolLM2)"
SYSTEM_MESSAGE = "You are a helpful assistant. Answer briefly and clearly."


def _node(
    node_id: str, name: str, label: str, category: str, inputs: dict[str, Any], x: int
) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "customNode",
        "position": {"x": x, "y": 200},
        "data": {
            "id": node_id,
            "name": name,
            "label": label,
            "category": category,
            "inputs": inputs,
            "outputAnchors": [{"id": f"{node_id}-output-{name}", "name": name, "label": label}],
        },
    }


def _edge(source: str, source_name: str, target: str, target_input: str) -> dict[str, Any]:
    return {
        "source": source,
        "sourceHandle": f"{source}-output-{source_name}",
        "target": target,
        "targetHandle": f"{target}-input-{target_input}",
        "type": "buttonedge",
        "id": f"{source}-{target}-{target_input}",
    }


def seed_flow_data() -> str:
    nodes = [
        _node(
            "chatLocalModel_0",
            "chatLocalModel",
            "Local Model (embedded SmolLM2)",
            "Chat Models",
            {"temperature": 0.2, "topP": 0.9, "repeatPenalty": 1.1, "maxTokens": 256, "streaming": True},
            100,
        ),
        _node(
            "bufferMemory_0", "bufferMemory", "Buffer Memory", "Memory", {"memoryKey": "chat_history"}, 100
        ),
        _node(
            "conversationChain_0",
            "conversationChain",
            "Conversation Chain",
            "Chains",
            {
                "model": "{{chatLocalModel_0.data.instance}}",
                "memory": "{{bufferMemory_0.data.instance}}",
                "systemMessagePrompt": SYSTEM_MESSAGE,
            },
            500,
        ),
    ]
    edges = [
        _edge("chatLocalModel_0", "chatLocalModel", "conversationChain_0", "model"),
        _edge("bufferMemory_0", "bufferMemory", "conversationChain_0", "memory"),
    ]
    return json.dumps({"nodes": nodes, "edges": edges})


DOCS_NAME = "Ask your documents"
_LOADERS = (
    ("textFile_0", "textFile", "Text File"),
    ("pdfFile_0", "pdfFile", "Pdf File"),
    ("docxFile_0", "docxFile", "Docx File"),
    ("csvFile_0", "csvFile", "Csv File"),
    ("jsonFile_0", "jsonFile", "Json File"),
)


def _ref(node_id: str) -> str:
    return "{{" + node_id + ".data.instance}}"


def documents_flow_data() -> str:
    """Files → split → local embeddings → the embedded store → a conversational retrieval chain on the
    local model, with memory and sources: everything on this machine, no key, no network."""
    nodes = [
        _node(
            "chatLocalModel_0",
            "chatLocalModel",
            "Local Model (embedded SmolLM2)",
            "Chat Models",
            {"temperature": 0.1, "topP": 0.9, "repeatPenalty": 1.1, "maxTokens": 256, "streaming": True},
            100,
        ),
        _node(
            "recursiveCharacterTextSplitter_0",
            "recursiveCharacterTextSplitter",
            "Recursive Character Text Splitter",
            "Text Splitters",
            {"chunkSize": 1000, "chunkOverlap": 200},
            100,
        ),
        *(
            _node(
                node_id,
                name,
                label,
                "Document Loaders",
                {"textSplitter": _ref("recursiveCharacterTextSplitter_0")},
                300,
            )
            for node_id, name, label in _LOADERS
        ),
        _node("localEmbeddings_0", "localEmbeddings", "Local Embeddings (embedded)", "Embeddings", {}, 300),
        _node(
            "embeddedVectorStore_0",
            "embeddedVectorStore",
            "Embedded Vector Store (SQLite)",
            "Vector Stores",
            {
                "document": [_ref(node_id) for node_id, _, _ in _LOADERS],
                "embeddings": _ref("localEmbeddings_0"),
                "topK": 3,
            },
            500,
        ),
        _node(
            "bufferMemory_0", "bufferMemory", "Buffer Memory", "Memory", {"memoryKey": "chat_history"}, 500
        ),
        _node(
            "conversationalRetrievalQAChain_0",
            "conversationalRetrievalQAChain",
            "Conversational Retrieval QA Chain",
            "Chains",
            {
                "model": _ref("chatLocalModel_0"),
                "vectorStoreRetriever": _ref("embeddedVectorStore_0"),
                "memory": _ref("bufferMemory_0"),
                "returnSourceDocuments": True,
            },
            800,
        ),
    ]
    edges = [
        *(
            _edge(
                "recursiveCharacterTextSplitter_0", "recursiveCharacterTextSplitter", node_id, "textSplitter"
            )
            for node_id, _, _ in _LOADERS
        ),
        *(_edge(node_id, name, "embeddedVectorStore_0", "document") for node_id, name, _ in _LOADERS),
        _edge("localEmbeddings_0", "localEmbeddings", "embeddedVectorStore_0", "embeddings"),
        _edge("chatLocalModel_0", "chatLocalModel", "conversationalRetrievalQAChain_0", "model"),
        _edge(
            "embeddedVectorStore_0",
            "embeddedVectorStore",
            "conversationalRetrievalQAChain_0",
            "vectorStoreRetriever",
        ),
        _edge("bufferMemory_0", "bufferMemory", "conversationalRetrievalQAChain_0", "memory"),
    ]
    return json.dumps({"nodes": nodes, "edges": edges})
