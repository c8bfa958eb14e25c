"""Predictions on an API node in scale-out mode: the run goes to a worker, its events come back
through Redis, and the client sees exactly what an in-process run would have sent.

A streamed answer is an `EventStream` over the node's one Redis reader; a JSON answer reads the
same events to the end and builds Flowise's JSON from them. Either way the client hanging up
cancels the run on its worker (a marker in Redis), unless it `detach`ed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from streamwise import errors
from streamwise.api.errors import response_for
from streamwise.api.sse import EventStream
from streamwise.api.state import AppState
from streamwise.distributed.dispatcher import RemoteRuns
from streamwise.engine.events import Abort, End, Error, Metadata, Restart, SourceDocuments, UsedTools
from streamwise.engine.run import CancelReason, RunRequest
from streamwise.errors import InternalError, StreamwiseError
from streamwise.wire.requests import PredictionRequest


def remote_runs(state: AppState) -> RemoteRuns:
    remote = state.remote
    if remote is None:
        raise RuntimeError("this server runs answers in-process")
    return remote


async def predict_remote(
    state: AppState, request: Request, body: PredictionRequest, run_request: RunRequest, streams: bool
) -> tuple[str, Response]:
    """(run id, response) for a prediction handed to a worker."""
    remote = remote_runs(state)
    job = await remote.submit(run_request, body.override_config)
    run_id = job.run_id

    def cancel(reason: CancelReason) -> None:
        remote.cancel_soon(run_id, reason)

    if streams:
        stream = EventStream(
            run_id,
            lambda: remote.reader(run_id, start_by=job.start_by),
            cancel,
            state.settings.heartbeat_seconds,
            detach=body.detach,
        )
        return run_id, stream
    return run_id, await _json_answer(remote, request, run_id, job.start_by, body.detach)


def stream_remote(state: AppState, run_id: str, after: int) -> Response:
    """A run on a worker, from event `after` on (a resume: leaving never stops the run)."""
    remote = remote_runs(state)
    return EventStream(
        run_id,
        lambda: remote.reader(run_id, after),
        lambda _reason: None,
        state.settings.heartbeat_seconds,
        detach=True,
    )


async def _json_answer(
    remote: RemoteRuns, request: Request, run_id: str, start_by: float, detach: bool
) -> Response:
    """Read the run's events to `end` and answer with Flowise's JSON; a client leaving cancels."""

    async def client_left() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        if not detach:
            remote.cancel_soon(run_id, "disconnect")

    watcher = asyncio.create_task(client_left())
    try:
        return await _collect(remote, run_id, start_by)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def _collect(remote: RemoteRuns, run_id: str, start_by: float) -> Response:
    tokens: list[str] = []
    result: dict[str, Any] = {}
    error: str | None = None
    aborted = False
    try:
        with remote.reader(run_id, start_by=start_by) as reader:
            async for batch in reader.batches():
                for entry in batch:
                    if isinstance(entry, str):
                        tokens.append(entry)
                    elif type(entry) is Restart:
                        tokens.clear()
                        result.pop("sourceDocuments", None)
                        result.pop("usedTools", None)
                    elif type(entry) is Metadata:
                        result.update(entry.data)
                    elif type(entry) is SourceDocuments:
                        result["sourceDocuments"] = entry.data
                    elif type(entry) is UsedTools:
                        result["usedTools"] = entry.data
                    elif type(entry) is Error:
                        error = entry.data
                    elif type(entry) is Abort:
                        aborted = True
                    elif type(entry) is End:
                        break
    except errors.StreamwiseError:
        raise
    except Exception as exc:  # ReaderFailed: Redis lost, events gone, queue wait passed
        error = str(exc)
    if error is not None:
        return response_for(await _failure(remote, run_id, error))
    answer: dict[str, Any] = {"text": "".join(tokens), **result}
    if aborted:
        answer["aborted"] = True
    return JSONResponse(answer)


async def _failure(remote: RemoteRuns, run_id: str, message: str) -> StreamwiseError:
    """The error a failed run stands for, by the kind its worker recorded."""
    try:
        row = await remote.rows.get(run_id)
    except Exception:
        row = None
    kind = getattr(errors, row.failure, None) if row is not None and row.failure else None
    if isinstance(kind, type) and issubclass(kind, StreamwiseError):
        with contextlib.suppress(TypeError):  # a kind whose constructor wants more
            return kind(message)
    if "Redis" in message:
        return errors.Unavailable(message)
    return InternalError(message)
