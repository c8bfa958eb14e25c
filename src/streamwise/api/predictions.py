"""POST /api/v1/prediction/{id} (and /predictions/), and the streaming check the SDKs call first."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from streamwise.api.body import read_fields
from streamwise.api.errors import ApiError, error_response
from streamwise.api.sse import RunEventStream
from streamwise.api.state import AppState, State
from streamwise.engine.build import build_answerer
from streamwise.engine.graph import parse_flow_data
from streamwise.engine.ports import Answerer
from streamwise.engine.run import Run, RunOutcome, RunRequest
from streamwise.engine.runs import ShuttingDown
from streamwise.wire.requests import parse_prediction

router = APIRouter()


async def _load_answerer(state: AppState, chatflow_id: str, override: Any = None) -> Answerer:
    chatflow = await state.chatflow_cache.get(chatflow_id)
    if chatflow is None:
        raise ApiError(404, f"Chatflow {chatflow_id} not found")
    graph = parse_flow_data(chatflow.flowData, state.registry)
    return build_answerer(graph, state.registry, override)


@router.get("/api/v1/chatflows-streaming/{chatflow_id}")
async def is_streaming(chatflow_id: str, state: State) -> dict[str, bool]:
    answerer = await _load_answerer(state, chatflow_id)
    return {"isStreaming": answerer.can_stream}


@router.post("/api/v1/prediction/{chatflow_id}", response_model=None)
@router.post("/api/v1/predictions/{chatflow_id}", response_model=None, include_in_schema=False)
async def predict(chatflow_id: str, request: Request, state: State) -> Response:
    body = parse_prediction(await read_fields(request, state.settings.max_body_bytes))
    answerer = await _load_answerer(state, chatflow_id, body.override_config)
    chat_id = body.chat_id or body.session_id or str(uuid.uuid4())
    run_request = RunRequest(
        chatflow_id=chatflow_id,
        question=body.question,
        chat_id=chat_id,
        session_id=body.session_id or chat_id,
        seed_history=body.history,
    )
    try:
        run = state.runs.start(run_request, answerer)
    except ShuttingDown:
        raise ApiError(503, "Server shutting down") from None
    if body.streaming and answerer.can_stream:
        return RunEventStream(run, state.settings.heartbeat_seconds)
    outcome = await _wait_unless_client_leaves(run, request)
    return _json_result(outcome, run)


async def _wait_unless_client_leaves(run: Run, request: Request) -> RunOutcome:
    """A non-streaming caller that hangs up cancels its run too."""

    async def client_left() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        run.cancel("disconnect")

    watcher = asyncio.create_task(client_left())
    try:
        return await run.wait()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


def _json_result(outcome: RunOutcome, run: Run) -> JSONResponse:
    if outcome.status == "error":
        if run.cancel_reason == "shutdown":
            return error_response(503, "Server shutting down")
        return error_response(500, outcome.error or "The model failed")
    result: dict[str, Any] = {"text": outcome.text, **outcome.metadata}
    if outcome.status == "aborted":
        result["aborted"] = True
    return JSONResponse(result)
