"""Flowise "bufferMemory": the whole stored conversation of the session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamwise.engine.ports import ChatTurn, SessionContext
from streamwise.nodes.registry import NodeSpec
from streamwise.nodes.services import NodeServices


async def session_turns(session: SessionContext) -> list[ChatTurn]:
    """Stored turns of this session, or the request's `history` when nothing is stored yet."""
    stored = await session.history.history(session.chatflow_id, session.session_id)
    return stored if stored else list(session.seed_history)


@dataclass(frozen=True)
class BufferMemory:
    memory_type: str = "Buffer Memory"

    async def load(self, session: SessionContext) -> list[ChatTurn]:
        return await session_turns(session)


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> BufferMemory:
    return BufferMemory()


SPEC = NodeSpec(
    name="bufferMemory",
    label="Buffer Memory",
    category="Memory",
    build=build,
    honoured=(),
    # The session comes from the request (overrideConfig.sessionId, else chatId), as in Flowise.
    ignored=("sessionId", "memoryKey"),
)
