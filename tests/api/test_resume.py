"""Resuming a stream: `X-Run-Id`, numbered frames, `Last-Event-ID` on the same prediction request, and
`GET /api/v1/runs/{id}/events`, in the default in-process mode, over real sockets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from streamwise.settings import Settings
from tests.conftest import FAKE_MODULES
from tests.support.flows import fake_flow
from tests.support.server import LiveServer, live_server
from tests.support.sse import check_invariant, parse_frames

TOKENS = [f"w{index} " for index in range(60)]


def _first_frames(server: LiveServer, chatflow_id: str, count: int, **body: object) -> tuple[str, bytes]:
    """Read `count` frames of a new stream, then hang up; (run id, the bytes read)."""
    request = {"question": "Tell me", "streaming": True, **body}
    with httpx.stream(
        "POST", f"{server.base_url}/api/v1/prediction/{chatflow_id}", json=request, timeout=20
    ) as response:
        assert response.status_code == 200
        run_id = response.headers["x-run-id"]
        received = b""
        for chunk in response.iter_raw():
            received += chunk
            if received.count(b"\n\n") >= count:
                break
    return run_id, received[: _end_of_frame(received, count)]


def _end_of_frame(raw: bytes, count: int) -> int:
    end = -2
    for _ in range(count):
        end = raw.index(b"\n\n", end + 2)
    return end + 2


def _last_id(raw: bytes) -> str:
    return raw.rstrip(b"\n").rsplit(b"\nid:", 1)[1].decode()


def test_a_dropped_detached_stream_resumes_with_last_event_id_without_gap_or_duplicate(
    server: LiveServer,
) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=TOKENS, delayMs=15))
    run_id, first = _first_frames(server, chatflow_id, 10, detach=True)
    last = _last_id(first)
    assert last == f"{run_id}:10"
    time.sleep(0.2)  # the run goes on meanwhile
    rest = httpx.post(
        f"{server.base_url}/api/v1/prediction/{chatflow_id}",
        json={"question": "Tell me", "streaming": True, "detach": True},
        headers={"Last-Event-ID": last},
        timeout=20,
    )
    assert rest.status_code == 200 and rest.headers["x-run-id"] == run_id
    assert rest.content.startswith(b"message:") and f"\nid:{run_id}:11\n".encode() in rest.content
    frames = parse_frames(first + rest.content)  # one run, numbers 1.. without a gap
    assert check_invariant(frames) == "".join(TOKENS)
    # It was the same run: one exchange stored, not two.
    rows = httpx.get(f"{server.base_url}/api/v1/chatmessage/{chatflow_id}", timeout=10).json()
    assert [row["role"] for row in rows] == ["userMessage", "apiMessage"]


def test_a_stream_that_was_not_detached_stops_when_its_client_leaves(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=TOKENS, delayMs=15))
    run_id, first = _first_frames(server, chatflow_id, 5)
    deadline = time.monotonic() + 10
    while True:
        rest = httpx.get(f"{server.base_url}/api/v1/runs/{run_id}/events", params={"after": 5}, timeout=20)
        if b'"event":"abort"' in rest.content or time.monotonic() > deadline:
            break
    frames = parse_frames(first + rest.content)
    names = [frame.event for frame in frames]
    assert "abort" in names and names[-1] == "end"
    assert len(check_invariant(frames)) < len("".join(TOKENS))


def test_the_runs_route_replays_from_any_position_and_says_what_it_cannot(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["a", "b", "c"]))
    answer = httpx.post(
        f"{server.base_url}/api/v1/prediction/{chatflow_id}",
        json={"question": "q", "streaming": True},
        timeout=20,
    )
    run_id = answer.headers["x-run-id"]
    url = f"{server.base_url}/api/v1/runs/{run_id}/events"
    whole = httpx.get(url, timeout=20)
    assert whole.content == answer.content  # the same bytes, after the run ended
    by_header = httpx.get(url, headers={"Last-Event-ID": f"{run_id}:2"}, timeout=20)
    by_query = httpx.get(url, params={"after": 2}, timeout=20)
    assert by_header.content == by_query.content
    assert by_query.content.startswith(b'message:\ndata:{"event":"token","data":"b"}\nid:')
    assert httpx.get(url, params={"after": 999}, timeout=20).status_code == 400
    assert httpx.get(url, params={"after": -1}, timeout=20).status_code == 400
    for hostile in (10**20, "1e3", "\u00b2", ""):
        refused = httpx.get(url, params={"after": hostile}, timeout=20)
        assert refused.status_code == 400 and refused.json()["message"], (hostile, refused.text)
    missing = httpx.get(f"{server.base_url}/api/v1/runs/no-such-run/events", timeout=20)
    assert missing.status_code == 404 and "not running here" in missing.json()["message"]
    # Resuming through another chatflow's prediction route is not a way in.
    other = server.create_flow(fake_flow(tokens=["x"]))
    crossed = httpx.post(
        f"{server.base_url}/api/v1/prediction/{other}",
        json={"question": "q", "streaming": True},
        headers={"Last-Event-ID": f"{run_id}:1"},
        timeout=20,
    )
    assert crossed.status_code == 404
    # A Last-Event-ID that names no run at all is not a resume: a new answer.
    fresh = httpx.post(
        f"{server.base_url}/api/v1/prediction/{other}",
        json={"question": "q", "streaming": True},
        headers={"Last-Event-ID": "not an id"},
        timeout=20,
    )
    assert fresh.status_code == 200 and fresh.headers["x-run-id"] != run_id
    # Nor are ids whose number only Unicode calls a digit (a superscript two, sent as Latin-1).
    for header in (b"x:\xb2", f"{run_id}:\xb2".encode("latin-1"), b"\xff:1"):
        odd = httpx.post(
            f"{server.base_url}/api/v1/prediction/{other}",
            json={"question": "q", "streaming": True},
            headers={b"Last-Event-ID": header},
            timeout=20,
        )
        assert odd.status_code in (200, 404), (header, odd.text)
        assert odd.headers["content-type"].startswith(("text/event-stream", "application/json"))


def test_positions_no_longer_kept_are_a_410(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        seed=False,
        preload_local_model=False,
        node_modules=FAKE_MODULES,
        resume_buffer_bytes=10_000,
    )
    with live_server(settings) as running:
        chatflow_id = running.create_flow(fake_flow(tokenCount=500))
        answer = httpx.post(
            f"{running.base_url}/api/v1/prediction/{chatflow_id}",
            json={"question": "q", "streaming": True},
            timeout=20,
        )
        run_id = answer.headers["x-run-id"]
        early = httpx.get(f"{running.base_url}/api/v1/runs/{run_id}/events", params={"after": 1}, timeout=20)
        assert early.status_code == 410, early.text
        late = httpx.get(f"{running.base_url}/api/v1/runs/{run_id}/events", params={"after": 483}, timeout=20)
        assert late.status_code == 200 and parse_frames(late.content)[-1].event == "end"


@pytest.mark.parametrize("resume_seconds", [0.3])
def test_a_finished_run_is_kept_for_resume_seconds_only(tmp_path: Path, resume_seconds: float) -> None:
    settings = Settings(
        data_dir=tmp_path,
        seed=False,
        preload_local_model=False,
        node_modules=FAKE_MODULES,
        resume_seconds=resume_seconds,
    )
    with live_server(settings) as running:
        chatflow_id = running.create_flow(fake_flow(tokens=["a"]))
        answer = httpx.post(
            f"{running.base_url}/api/v1/prediction/{chatflow_id}",
            json={"question": "q", "streaming": True},
            timeout=20,
        )
        url = f"{running.base_url}/api/v1/runs/{answer.headers['x-run-id']}/events"
        assert httpx.get(url, timeout=20).status_code == 200
        asyncio.run(asyncio.sleep(resume_seconds + 0.3))
        assert httpx.get(url, timeout=20).status_code == 404
