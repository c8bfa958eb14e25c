"""A chatflow, by id, as an answerer ready to run: what a prediction needs, on an API node or a
worker alike (the chatflow cache, the node registry and the stored credentials)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamwise.api.credential_inputs import credential_inputs
from streamwise.engine.build import build_answerer
from streamwise.engine.graph import FlowGraph
from streamwise.engine.overrides import OverridePolicy
from streamwise.engine.ports import Answerer
from streamwise.errors import NotFound
from streamwise.nodes.registry import NodeRegistry
from streamwise.store import CachedChatflow, ChatflowCache
from streamwise.store.credentials import CredentialRepository


@dataclass(frozen=True)
class Answerers:
    chatflows: ChatflowCache[FlowGraph]
    registry: NodeRegistry
    credentials: CredentialRepository

    async def chatflow(self, chatflow_id: str) -> CachedChatflow[FlowGraph]:
        chatflow = await self.chatflows.get(chatflow_id)
        if chatflow is None:
            raise NotFound(f"Chatflow {chatflow_id} not found")
        return chatflow

    async def build(self, chatflow_id: str, override: Mapping[str, Any] | None = None) -> Answerer:
        """The chatflow's answerer, with the overrides its `apiConfig` allows and its credentials."""
        return await self.build_for(await self.chatflow(chatflow_id), override)

    async def build_for(
        self, chatflow: CachedChatflow[FlowGraph], override: Mapping[str, Any] | None = None
    ) -> Answerer:
        policy = OverridePolicy.from_api_config(chatflow.record.apiConfig)
        inject = await credential_inputs(chatflow.prepared, self.credentials)
        return build_answerer(chatflow.prepared, self.registry, override, policy=policy, inject=inject)
