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
