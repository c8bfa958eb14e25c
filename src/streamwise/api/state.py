"""What the routes share: settings, repositories, the node registry and the live runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from streamwise.engine.runs import RunManager
from streamwise.nodes.registry import NodeRegistry
from streamwise.settings import Settings
from streamwise.store import ChatflowCache, ChatflowRepository, Database, MessageRepository


@dataclass
class AppState:
    settings: Settings
    database: Database
    chatflows: ChatflowRepository
    chatflow_cache: ChatflowCache  # read path of predictions; routes that write must `forget`
    messages: MessageRepository
    registry: NodeRegistry
    runs: RunManager


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.streamwise
    return state


# Route parameter type: `state: State` gives a handler the shared application state.
State = Annotated[AppState, Depends(app_state)]
