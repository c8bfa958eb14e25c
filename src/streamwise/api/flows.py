"""Chatflow records → runnable graphs, for the routes: the save-time check and the prediction path.

A graph is parsed once per version of a chatflow (the cache keeps it), off the event loop when it is
large. A chatflow is checked at save time exactly as it would be at run time: parsed, validated, and
every node built, so a graph that cannot run never becomes a row.
"""

from __future__ import annotations

import asyncio
import functools

from streamwise import jsontext
from streamwise.api.credential_inputs import credential_inputs
from streamwise.api.state import AppState
from streamwise.engine.build import build_answerer
from streamwise.engine.graph import FlowGraph, parse_flow_data_off_loop
from streamwise.store import CachedChatflow


async def check_runnable(state: AppState, flow_data: str) -> FlowGraph:
    """Parse, validate and build every node once; raises the error a prediction would meet."""
    graph = await parse_flow_data_off_loop(flow_data, state.registry, state.graph_limits)
    inject = await credential_inputs(graph, state.credentials)
    if len(flow_data) > jsontext.OFFLOAD_BYTES:
        await asyncio.to_thread(functools.partial(build_answerer, graph, state.registry, inject=inject))
    else:
        build_answerer(graph, state.registry, inject=inject)
    return graph


async def load_chatflow(state: AppState, chatflow_id: str) -> CachedChatflow[FlowGraph]:
    return await state.answerers.chatflow(chatflow_id)
