"""What the routes share: settings, repositories, the node registry and the live runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from streamwise.answerers import Answerers
from streamwise.api.body import BodyLimits
from streamwise.api.rate_limits import (
    DEFAULT_LIMIT_MESSAGE,
    RateLimit,
    RateLimiter,
    StreamSlots,
    TrustedProxies,
    chatflow_rate_limit,
)
from streamwise.distributed.dispatcher import RemoteRuns
from streamwise.engine.graph import FlowGraph, GraphLimits
from streamwise.engine.runs import RunManager
from streamwise.nodes.registry import NodeRegistry
from streamwise.security.keys import KeyRing
from streamwise.settings import Settings
from streamwise.store import ChatflowCache, ChatflowRecord, ChatflowRepository, Database, MessageRepository
from streamwise.store.credentials import CredentialRepository
from streamwise.store.records import RecordRepository
from streamwise.wire.requests import RequestLimits


@dataclass
class AppState:
    settings: Settings
    database: Database
    chatflows: ChatflowRepository
    # The read path of predictions (records with their parsed graphs); routes that write must `forget`.
    chatflow_cache: ChatflowCache[FlowGraph]
    messages: MessageRepository
    registry: NodeRegistry
    runs: RunManager
    records: RecordRepository
    keys: KeyRing
    credentials: CredentialRepository
    rate_limiter: RateLimiter
    stream_slots: StreamSlots
    proxies: TrustedProxies
    # Scale-out (a Redis URL set): runs go to workers; None when they run in this process.
    remote: RemoteRuns | None = None
    body_limits: BodyLimits = field(init=False)
    graph_limits: GraphLimits = field(init=False)
    request_limits: RequestLimits = field(init=False)
    default_rate_limit: RateLimit | None = field(init=False)
    answerers: Answerers = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.body_limits = BodyLimits(settings.max_body_bytes, settings.body_timeout_seconds)
        self.graph_limits = GraphLimits(settings.max_flow_nodes, settings.max_flow_edges)
        self.request_limits = RequestLimits(settings.max_message_chars, settings.max_history_turns)
        self.answerers = Answerers(self.chatflow_cache, self.registry, self.credentials)
        self.default_rate_limit = (
            RateLimit(settings.rate_limit_max, settings.rate_limit_seconds, DEFAULT_LIMIT_MESSAGE)
            if settings.rate_limit_max
            else None
        )

    def rate_limit_for(self, record: ChatflowRecord) -> RateLimit | None:
        """The chatflow's `apiConfig.rateLimit`, else the server's default."""
        return chatflow_rate_limit(record.apiConfig, self.default_rate_limit)


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.streamwise
    return state


# Route parameter type: `state: State` gives a handler the shared application state.
State = Annotated[AppState, Depends(app_state)]
