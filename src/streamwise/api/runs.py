"""A run's events from any position: `GET /api/v1/runs/{id}/events`, and resuming a prediction.

Every streamed answer says its run in `X-Run-Id` and numbers its frames (`id: <run id>:<n>`). A client
whose connection dropped reads the rest with `Last-Event-ID: <run id>:<n>`, either by sending the same
prediction request again (what EventSource and fetch-event-source do when they reconnect: the run
goes on from there, no new one starts), or from this route, with the header or `?after=<n>`. Either way
it gets every event after the n-th, no duplicate and no gap, then `end`.

A run can be read while it runs and for `STREAMWISE_RESUME_SECONDS` after it ended, from the newest
`STREAMWISE_RESUME_BUFFER_BYTES` of its events (older positions are a 410). A reader of this route
never stops the run by leaving. Who may read a run is who may use its chatflow: its key when it is
bound to one, and the chatflow's allowed origins.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from redis.exceptions import RedisError

from streamwise.api.access import Access, authorize_flow, guard
from streamwise.api.cors import refuse_origin
from streamwise.api.remote import remote_runs, stream_remote
from streamwise.api.sse import run_event_stream
from streamwise.api.state import AppState, State
from streamwise.distributed.eventlog import log_tail
from streamwise.errors import BadRequest, Gone, NotFound, Unavailable
from streamwise.store.runs import ACTIVE
from streamwise.wire.frames import MAX_EVENT_NUMBER, parse_event_id

router = APIRouter()


async def resumed(
    state: AppState, request: Request, run_id: str, after: int, *, chatflow_id: str | None = None
) -> Response:
    """The events of run `run_id` after the `after`-th, as a stream; 404/410/401/403 before any byte."""
    if state.remote is not None:
        return await _resumed_remote(state, request, run_id, after, chatflow_id)
    run = state.runs.get(run_id)
    if run is None or (chatflow_id is not None and run.request.chatflow_id != chatflow_id):
        raise NotFound(
            f"Run {run_id} is not running here, nor did it end in the last "
            f"{state.settings.resume_seconds:g} s"
        )
    refused = await _refused(state, request, run.request.chatflow_id, f"Run {run_id} is not running here")
    if refused is not None:
        return refused
    log = run.log
    if log is None:
        raise NotFound(f"Run {run_id} is not running here")
    if after > len(log):
        raise BadRequest(f"Run {run_id} has {len(log)} events so far, not {after}")
    try:
        log.since(after)
    except LookupError:
        raise Gone(f"Run {run_id}'s events after the {after}-th are no longer kept") from None
    # Whoever resumes took over from a client that left: leaving again must not stop the run.
    return run_event_stream(run, state.settings.heartbeat_seconds, after, detach=True)


async def _refused(state: AppState, request: Request, chatflow_id: str, missing: str) -> Response | None:
    """Who may read a run is who may use its chatflow: 401 (raised) for the wrong key, the origin's
    refusal (returned), NotFound(`missing`) when the chatflow is gone; None when allowed."""
    record = await state.chatflows.get(chatflow_id)
    if record is None:
        raise NotFound(missing)
    await authorize_flow(request, state, record)
    return refuse_origin(request, record, streaming=True)


def last_event(request: Request) -> tuple[str, int] | None:
    header = request.headers.get("last-event-id")
    return parse_event_id(header) if header else None


@router.get("/api/v1/runs/{run_id}/events", response_model=None, dependencies=[guard(Access.FLOW)])
async def run_events(
    run_id: str,
    request: Request,
    state: State,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_EVENT_NUMBER,
            description="Send the events after this many (default: Last-Event-ID, else 0).",
        ),
    ] = None,
) -> Response:
    if after is None:
        named = last_event(request)
        after = named[1] if named is not None and named[0] == run_id else 0
    return await resumed(state, request, run_id, after)


async def _resumed_remote(
    state: AppState, request: Request, run_id: str, after: int, chatflow_id: str | None
) -> Response:
    """The same, for a run dispatched by any API node of the deployment (its row says whose)."""
    remote = remote_runs(state)
    row = await remote.rows.get(run_id)
    if row is None or (chatflow_id is not None and row.chatflowid != chatflow_id):
        raise NotFound(f"Run {run_id} is not known here")
    refused = await _refused(state, request, row.chatflowid, f"Run {run_id} is not known here")
    if refused is not None:
        return refused
    try:
        tail = await log_tail(remote.redis, remote.keys.events(run_id))
    except RedisError:
        raise Unavailable("The server cannot reach Redis, which keeps this answer's events") from None
    if tail is None:
        if row.status not in ACTIVE or after > 0:
            raise Gone(f"Run {run_id}'s events are no longer kept")
    elif after > tail[0]:  # no client was sent an event the run has not written
        raise BadRequest(f"Run {run_id} has {tail[0]} events so far, not {after}")
    return stream_remote(state, run_id, after)
