"""The worker's rules, in one process against the real Redis: what it does with a job it must not
run as given (cancelled, too late, taken over, delivered too often, malformed), and what the API
node does when no worker takes a run. The app runs with `role=api`; tests start a worker themselves
when they want one, after setting the stage."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from streamwise.api.state import AppState
from streamwise.app import create_app
from streamwise.distributed.cancel import request_cancel
from streamwise.distributed.dispatcher import QUEUE_MESSAGE
from streamwise.distributed.eventlog import RedisEventWriter, take_over
from streamwise.distributed.jobs import JobError, RunJob
from streamwise.distributed.worker import unsafe_tools
from streamwise.engine.events import CalledTools, Start
from streamwise.engine.ports import ChatTurn
from streamwise.engine.run import RunRequest
from streamwise.engine.tools import ToolSchema
from streamwise.nodes.services import NodeServices
from streamwise.scaleout import make_worker, running
from streamwise.settings import Settings
from streamwise.store.runs import RunRepository
from streamwise.wire.frames import encode_numbered
from tests.conftest import FAKE_MODULES
from tests.support.fake_tools import PARAMETERS, FakeTool
from tests.support.flows import fake_flow
from tests.support.redis import REDIS_URL, delete_matching
from tests.support.sse import Frame, check_invariant, parse_frames

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = Settings(
        data_dir=tmp_path,
        seed=False,
        preload_local_model=False,
        node_modules=FAKE_MODULES,
        redis_url=REDIS_URL,
        redis_prefix=f"test-{uuid.uuid4()}",
        role="api",
        queue_wait_seconds=1,
        worker_max_attempts=2,
        worker_lease_seconds=1,
        resume_seconds=5,
    )
    application = create_app(settings, NodeServices(env={}))
    try:
        async with application.router.lifespan_context(application):
            yield application
    finally:
        await delete_matching(f"{settings.redis_prefix}:*")


def state_of(app: FastAPI) -> AppState:
    state: AppState = app.state.streamwise
    return state


@pytest.fixture
async def http(api: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as client:
        yield client


async def chatflow(http: httpx.AsyncClient, **inputs: Any) -> str:
    response = await http.post("/api/v1/chatflows", json={"name": "w", "flowData": fake_flow(**inputs)})
    assert response.status_code == 200, response.text
    chatflow_id: str = response.json()["id"]
    return chatflow_id


def job(chatflow_id: str, **fields: Any) -> RunJob:
    request = RunRequest(chatflow_id=chatflow_id, question="q", chat_id="c", session_id="c")
    return RunJob(
        run_id=str(uuid.uuid4()),
        request=request,
        user_message_id=str(uuid.uuid4()),
        chat_message_id=str(uuid.uuid4()),
        **fields,
    )


async def dispatch(state: AppState, run: RunJob) -> None:
    """What `RemoteRuns.submit` does, for a job this test shaped itself."""
    assert state.remote is not None
    await state.remote.rows.create(run.run_id, run.request.chatflow_id, "c", "c")
    await state.remote.queue.submit(run.run_id, run.dumps())


async def events_of(state: AppState, run_id: str) -> list[Frame]:
    assert state.remote is not None
    with state.remote.reader(run_id) as reader:
        body = b""
        async with asyncio.timeout(20):
            async for batch in reader.batches():
                body += encode_numbered(batch, run_id, reader.cursor - len(batch) + 1)
    return parse_frames(body)


async def serve_worker(state: AppState) -> Any:
    assert state.remote is not None
    worker = make_worker(
        state.settings, state.remote.redis, state.database, state.messages, state.runs, state.answerers
    )
    return running(worker)


async def until_no_jobs(state: AppState) -> None:
    """Wait (at most 10 s) until every job was acknowledged."""
    assert state.remote is not None
    deadline = time.monotonic() + 10
    while await state.remote.queue.length():
        assert time.monotonic() < deadline, "a job was never acknowledged"
        await asyncio.sleep(0.05)


async def stored(http: httpx.AsyncClient, chatflow_id: str) -> list[tuple[str, str]]:
    rows = (await http.get(f"/api/v1/chatmessage/{chatflow_id}", params={"chatId": "c"})).json()
    return [(row["role"], row["content"]) for row in rows]


async def test_a_run_cancelled_before_any_worker_took_it_ends_with_abort(
    api: FastAPI, http: httpx.AsyncClient
) -> None:
    state = state_of(api)
    assert state.remote is not None
    run = job(await chatflow(http))
    await request_cancel(state.remote.redis, state.remote.keys, run.run_id, "abort", 60)
    await dispatch(state, run)
    async with await serve_worker(state):
        frames = await events_of(state, run.run_id)
    assert [frame.event for frame in frames] == ["start", "abort", "end"]
    row = await state.remote.rows.get(run.run_id)
    assert row is not None and row.status == "aborted"


async def test_a_job_taken_after_its_start_by_time_fails_without_running(
    api: FastAPI, http: httpx.AsyncClient
) -> None:
    state = state_of(api)
    run = job(await chatflow(http), start_by=time.time() - 1)
    await dispatch(state, run)
    async with await serve_worker(state):
        frames = await events_of(state, run.run_id)
    assert [(frame.event, frame.data) for frame in frames[1:]] == [
        ("error", "No worker took the answer in time"),
        ("end", "[DONE]"),
    ]
    assert await stored(http, run.request.chatflow_id) == []  # never run, nothing stored


async def abandoned(state: AppState, run: RunJob, *events: Any) -> None:
    """Dispatch the run as a worker that took it and died had left it: its events written so far,
    and its job pending, handed back (a worker taking it next takes it over: a second delivery)."""
    await dispatch(state, run)
    assert state.remote is not None
    async with state.remote.queue.consumer("ghost", slots=5, lease_ms=1000) as ghost:
        assert len(await ghost.take(1)) == 1
        await earlier_attempt(state, run.run_id, *events)


async def earlier_attempt(state: AppState, run_id: str, *events: Any) -> None:
    """What a worker that died had written of the run."""
    assert state.remote is not None
    redis, keys = state.remote.redis, state.remote.keys
    attempt = await take_over(redis, keys, run_id)
    async with RedisEventWriter(redis, keys, run_id, attempt) as writer:
        for event in events:
            if isinstance(event, str):
                writer.emit_tokens([event])
            else:
                writer.emit(event)


async def test_a_run_taken_over_starts_again_after_a_restart_event(
    api: FastAPI, http: httpx.AsyncClient
) -> None:
    state = state_of(api)
    run = job(await chatflow(http, tokens=["new ", "answer"]))
    await abandoned(state, run, Start("old "), "old ")
    async with await serve_worker(state):
        frames = await events_of(state, run.run_id)
    names = [frame.event for frame in frames]
    assert names == ["start", "token", "restart", "token", "token", "metadata", "end"]
    assert frames[2].data == {
        "attempt": 2,
        "reason": "the worker answering was lost; the answer starts again",
    }
    assert check_invariant(frames) == "old new answer"  # what a client that ignores restart would see
    assert await stored(http, run.request.chatflow_id) == [("userMessage", "q"), ("apiMessage", "new answer")]


async def test_a_run_whose_earlier_attempt_called_a_tool_with_effects_is_not_run_again(
    api: FastAPI, http: httpx.AsyncClient
) -> None:
    state = state_of(api)
    run = job(await chatflow(http))
    call = {"tool": "send_email", "toolInput": {"to": "x"}, "toolOutput": ""}
    await abandoned(state, run, Start(""), CalledTools([call]))
    async with await serve_worker(state):
        frames = await events_of(state, run.run_id)
    assert [frame.event for frame in frames] == ["start", "calledTools", "error", "end"]
    assert "after calling send_email; it is not run again" in frames[2].data
    assert state.remote is not None
    row = await state.remote.rows.get(run.run_id)
    assert row is not None and row.status == "error"


def test_only_tools_known_to_have_no_side_effects_are_safe_to_call_again() -> None:
    def tool(name: str, effects: bool) -> FakeTool:
        return FakeTool(ToolSchema(name, "", PARAMETERS), None, 0, None, (), side_effects=effects)

    class Agent:
        tools = (tool("lookup", False), tool("post", True))

    called = [CalledTools([{"tool": "lookup"}, {"tool": "post"}]), CalledTools([{"tool": "other"}])]
    assert unsafe_tools(Agent(), called) == ["other", "post"]  # type: ignore[arg-type]
    assert unsafe_tools(Agent(), [CalledTools([{"tool": "lookup"}])]) == []  # type: ignore[arg-type]


async def test_a_run_delivered_more_often_than_allowed_fails(api: FastAPI, http: httpx.AsyncClient) -> None:
    state = state_of(api)
    assert state.remote is not None
    run = job(await chatflow(http))
    await dispatch(state, run)
    # Two workers took it and were lost (the second by taking it over): two deliveries, the limit.
    async with state.remote.queue.consumer("ghost", slots=5, lease_ms=1000) as ghost:
        assert len(await ghost.take(1)) == 1
    async with state.remote.queue.consumer("ghost-2", slots=5, lease_ms=1000) as second:
        assert [taken.deliveries for taken in await second.reclaim()] == [2]
    async with await serve_worker(state):  # the third delivery is one too many
        frames = await events_of(state, run.run_id)
    assert [frame.event for frame in frames] == ["start", "error", "end"]
    assert "lost 2 times" in frames[1].data
    row = await state.remote.rows.get(run.run_id)
    assert row is not None and row.status == "error"


async def test_a_run_no_worker_takes_in_time_fails_and_a_late_worker_drops_it(
    api: FastAPI, http: httpx.AsyncClient
) -> None:
    state = state_of(api)
    assert state.remote is not None
    chatflow_id = await chatflow(http)
    started = time.monotonic()
    response = await http.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "streaming": True})
    waited = time.monotonic() - started
    frames = parse_frames(response.content)
    assert [(frame.event, frame.data) for frame in frames] == [("error", QUEUE_MESSAGE), ("end", "[DONE]")]
    assert 1 <= waited < 10, waited
    row = await state.remote.rows.get(response.headers["x-run-id"])
    assert row is not None and (row.status, row.error) == ("error", QUEUE_MESSAGE)
    async with await serve_worker(state):
        await until_no_jobs(state)
    assert await stored(http, chatflow_id) == []  # the late worker ran nothing


async def test_a_job_submitted_twice_is_run_once(api: FastAPI, http: httpx.AsyncClient) -> None:
    state = state_of(api)
    assert state.remote is not None
    run = job(await chatflow(http, tokens=["once"]))
    await dispatch(state, run)
    async with await serve_worker(state):
        frames = await events_of(state, run.run_id)
        await state.remote.queue.submit(run.run_id, run.dumps())  # what a retried XADD may leave
        await until_no_jobs(state)
    assert [frame.event for frame in frames] == ["start", "token", "metadata", "end"]
    assert [frame.event for frame in await events_of(state, run.run_id)] == [
        "start",
        "token",
        "metadata",
        "end",
    ]
    assert await stored(http, run.request.chatflow_id) == [("userMessage", "q"), ("apiMessage", "once")]


async def test_a_malformed_job_is_dropped(api: FastAPI) -> None:
    state = state_of(api)
    assert state.remote is not None
    await state.remote.queue.submit("not-a-run", b'{"v": 99}')
    async with await serve_worker(state):
        await until_no_jobs(state)


def test_a_job_round_trips_and_a_foreign_payload_is_refused() -> None:
    request = RunRequest(
        chatflow_id="f",
        question="q",
        chat_id="c",
        session_id="s",
        chat_type="INTERNAL",
        seed_history=(ChatTurn("user", "hi"), ChatTurn("assistant", "hello")),
        max_history_turns=7,
    )
    run = RunJob("r", request, "u", "a", {"temperature": 0.1}, start_by=1.5, deadline=2.5, queued_by="api-1")
    assert RunJob.loads(run.dumps()) == run
    for payload in (b"", b"[]", b'{"v": 2}', json.dumps({"v": 1, "run": "r"}).encode(), b"\xff"):
        with pytest.raises(JobError):
            RunJob.loads(payload)


async def test_a_runs_end_comes_after_its_row_is_final_so_json_gets_the_failures_status(
    api: FastAPI, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API node answering JSON reads a failure's kind from the run's row when it sees `end`; a
    slow database must not let it see `end` first (it answered 500 for a model's failure)."""
    original = RunRepository.finish

    async def slow_finish(self: RunRepository, *args: Any, **kwargs: Any) -> bool:
        await asyncio.sleep(0.5)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(RunRepository, "finish", slow_finish)
    state = state_of(api)
    chatflow_id = await chatflow(http, tokenCount=7, failAt=4)
    async with await serve_worker(state):
        answer = await http.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q"})
        assert answer.status_code == 502, answer.text
        assert "scripted failure after 4 tokens" in answer.json()["message"]
        run = job(chatflow_id)
        await dispatch(state, run)
        frames = await events_of(state, run.run_id)  # read to `end` ...
        assert state.remote is not None
        row = await state.remote.rows.get(run.run_id)  # ... and the row is final already
        assert row is not None and (row.status, row.failure) == ("error", "ModelUnavailable"), row
    assert [frame.event for frame in frames][-2:] == ["error", "end"]
