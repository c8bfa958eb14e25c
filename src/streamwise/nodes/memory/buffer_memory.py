"""Flowise "bufferMemory": the whole stored conversation of the session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamwise.engine.ports import ChatTurn, SessionContext
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec


async def session_turns(session: SessionContext, limit: int | None = None) -> list[ChatTurn]:
    """Stored turns of this session, or the request's `history` when nothing is stored yet; at most
    `limit` (and the session's `max_history_turns`) of the newest."""
    caps = [cap for cap in (limit, session.max_history_turns) if cap is not None]
    cap = min(caps) if caps else None
    stored = await session.history.history(session.chatflow_id, session.session_id, limit=cap)
    turns = stored if stored else list(session.seed_history)
    return turns[len(turns) - cap :] if cap is not None and len(turns) > cap else turns


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
