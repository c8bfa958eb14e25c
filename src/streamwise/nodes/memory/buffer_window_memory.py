"""Flowise "bufferWindowMemory": the last `k` exchanges of the session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamwise.engine.ports import ChatTurn, SessionContext
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs as read
from streamwise.nodes.memory.buffer_memory import session_turns
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec


@dataclass(frozen=True)
class BufferWindowMemory:
    k: int
    memory_type: str = "Buffer Window Memory"

    async def load(self, session: SessionContext) -> list[ChatTurn]:
        if self.k <= 0:
            return []
        # An exchange is a user turn and the answer to it: keep the last k of them.
        return await session_turns(session, limit=2 * self.k)


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> BufferWindowMemory:
    k = read.integer(inputs, "k", node_id, 4)
    assert k is not None
    if k < 0:
        raise NodeConfigError(f"Node {node_id}: input 'k' must not be negative", node_id)
    return BufferWindowMemory(k)


SPEC = NodeSpec(
    name="bufferWindowMemory",
    label="Buffer Window Memory",
    category="Memory",
    build=build,
    honoured=("k",),
    ignored=("sessionId", "memoryKey"),
)
