"""POST /api/v1/prediction/{id} (and /predictions/), and the streaming check the SDKs call first."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from streamwise.api.access import Access, guard
from streamwise.api.body import read_fields
from streamwise.api.cors import refuse_origin
from streamwise.api.errors import response_for
from streamwise.api.flows import load_chatflow
from streamwise.api.remote import predict_remote
from streamwise.api.request_log import note_run
from streamwise.api.runs import last_event, resumed
from streamwise.api.sse import EventStream, run_event_stream
from streamwise.api.state import AppState, State
from streamwise.engine.build import build_answerer
from streamwise.engine.ports import Answerer
from streamwise.engine.run import Run, RunOutcome, RunRequest
from streamwise.errors import InternalError, RateLimited, ShuttingDown
from streamwise.wire.requests import PredictionRequest, parse_prediction

router = APIRouter()

_PREDICT = [guard(Access.FLOW, "chatflow_id", limited=True)]


@router.get("/api/v1/chatflows-streaming/{chatflow_id}", dependencies=[guard(Access.OPEN)])
async def is_streaming(chatflow_id: str, request: Request, state: State) -> Any:
    chatflow = await load_chatflow(state, chatflow_id)
    refused = refuse_origin(request, chatflow.record)
    if refused is not None:
        return refused
    answerer = build_answerer(chatflow.prepared, state.registry)
    return {"isStreaming": answerer.can_stream}


@router.post("/api/v1/prediction/{chatflow_id}", response_model=None, dependencies=_PREDICT)
@router.post(
    "/api/v1/predictions/{chatflow_id}", response_model=None, include_in_schema=False, dependencies=_PREDICT
)
async def predict(chatflow_id: str, request: Request, state: State) -> Response:
    resume = last_event(request)
    if resume is not None:  # a client reconnecting: the run goes on from there, no new one starts
        return await resumed(state, request, resume[0], resume[1], chatflow_id=chatflow_id)
    body = parse_prediction(await read_fields(request, state.body_limits), state.request_limits)
    chatflow = await load_chatflow(state, chatflow_id)
    refused = refuse_origin(request, chatflow.record, streaming=body.streaming)
    if refused is not None:
        return refused  # before any byte of an answer, as Flowise checks it
    answerer = await state.answerers.build_for(chatflow, body.override_config)
    who = request.state.principal.who
    if not state.stream_slots.acquire(who):
        raise RateLimited(
            f"Too many answers running at once for this client (at most "
            f"{state.settings.max_streams_per_client}); wait for one to end",
            retry_after=1,
        )
    if state.remote is not None:  # scale-out: a worker runs it
        run_request = _run_request(state, chatflow_id, body)
        return await _predict_on_worker(state, request, body, run_request, answerer)
    try:
        run = state.runs.start(_run_request(state, chatflow_id, body), answerer)  # ShuttingDown → 503
    except BaseException:
        state.stream_slots.release(who)
        raise
    run.start().add_done_callback(lambda _task: state.stream_slots.release(who))
    note_run(request, run.id)
    if body.streaming and answerer.can_stream:
        return run_event_stream(run, state.settings.heartbeat_seconds, detach=body.detach)
    if run.log is not None:
        run.log.discard_unread()  # the answer comes from the outcome; nobody reads the events
    outcome = await _wait_unless_client_leaves(run, request)
    return _json_result(outcome)


def _run_request(state: AppState, chatflow_id: str, body: PredictionRequest) -> RunRequest:
    chat_id = body.chat_id or body.session_id or str(uuid.uuid4())
    return RunRequest(
        chatflow_id=chatflow_id,
        question=body.question,
        chat_id=chat_id,
        session_id=body.session_id or chat_id,
        seed_history=body.history,
        max_history_turns=state.settings.max_history_turns,
    )


async def _predict_on_worker(
    state: AppState, request: Request, body: PredictionRequest, run_request: RunRequest, answerer: Answerer
) -> Response:
    """Hand the run to a worker; the client's slot is held until its answer is over."""
    who = request.state.principal.who
    if state.runs.draining:
        state.stream_slots.release(who)
        raise ShuttingDown("server shutting down")
    streams = body.streaming and answerer.can_stream
    try:
        run_id, response = await predict_remote(state, request, body, run_request, streams)
    except BaseException:
        state.stream_slots.release(who)
        raise
    note_run(request, run_id)
    if isinstance(response, EventStream):
        response.on_close = lambda: state.stream_slots.release(who)
    else:
        state.stream_slots.release(who)
    return response


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


def _json_result(outcome: RunOutcome) -> Response:
    if outcome.status == "error":
        return response_for(outcome.failure or InternalError(outcome.error or "The answer failed"))
    result: dict[str, Any] = {"text": outcome.text, **outcome.metadata}
    if outcome.source_documents:
        result["sourceDocuments"] = outcome.source_documents
    if outcome.used_tools:
        result["usedTools"] = outcome.used_tools
    if outcome.status == "aborted":
        result["aborted"] = True
    return JSONResponse(result)
