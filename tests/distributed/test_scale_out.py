"""Scale-out as users run it: `streamwise start --role api` and `streamwise worker` processes sharing
a PostgreSQL database and a Redis, driven over real sockets, with their parts killed, stopped and
restarted under running answers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from streamwise.client import Client
from streamwise.client import events as ev
from tests.support.cluster import Cluster, cluster
from tests.support.flows import chain_flow, fake_flow, fake_model
from tests.support.own_redis import OwnRedis
from tests.support.process import child_environment
from tests.support.redis import REDIS_URL, keys_matching
from tests.support.server import LiveServer
from tests.support.sse import Frame, check_invariant, hang_up_after, parse_frames, stream_acting_once

pytestmark = pytest.mark.timeout(180)

SLOW = {"tokenCount": 40, "delayMs": 60}  # t0 .. t39, about 2.4 s
FULL = "".join(f"t{index} " for index in range(40))
FAST_LEASE = {"STREAMWISE_WORKER_LEASE_SECONDS": "1.5"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Cluster]:
    """One API node and two workers, shared by the tests that do not break anything."""
    directory = tmp_path_factory.mktemp("cluster")
    with cluster(directory, postgres_url, REDIS_URL, workers=2) as shared:
        yield shared


@pytest.fixture
def fresh(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    """An API node and no worker yet (tests start, kill and stop their own), with a short lease."""
    with cluster(tmp_path, postgres_url, REDIS_URL, workers=0, env=FAST_LEASE) as own:
        yield own


def predict_url(base: str, chatflow_id: str) -> str:
    return f"{base}/api/v1/prediction/{chatflow_id}"


def _after_restart(frames: list[Frame]) -> str:
    names = [frame.event for frame in frames]
    last = max((index for index, name in enumerate(names) if name == "restart"), default=-1)
    return "".join(frame.data for frame in frames[last + 1 :] if frame.event == "token")


async def test_50_concurrent_worker_runs_each_get_start_and_their_exact_text(deployment: Cluster) -> None:
    chatflow_id = deployment.create_flow(fake_flow(echo=True, delayMs=5))
    url = predict_url(deployment.api_urls[0], chatflow_id)

    async def one(http: httpx.AsyncClient, index: int) -> tuple[int, list[Frame]]:
        response = await http.post(url, json={"question": f"question {index}", "streaming": True})
        assert response.status_code == 200, response.text
        return index, parse_frames(response.content)

    async with httpx.AsyncClient(timeout=60) as http, asyncio.timeout(120):
        results = await asyncio.gather(*(one(http, index) for index in range(50)))
    for index, frames in results:
        assert frames[0].event == "start", frames[:2]
        assert check_invariant(frames) == f"system: Be brief. | user: question {index}"
    logs = [log.read_text() for log in deployment.logs if log.name.startswith("worker")]
    assert len(logs) == 2 and all("Traceback" not in log for log in logs), deployment.output()


def test_a_client_that_hangs_up_stops_its_run_on_the_worker(deployment: Cluster) -> None:
    chatflow_id = deployment.create_flow(chain_flow(fake_model(**SLOW)))
    url = predict_url(deployment.api_urls[0], chatflow_id)
    hang_up_after(url, {"question": "go", "streaming": True, "chatId": "h1"}, 5)
    deadline = time.monotonic() + 20
    while True:
        rows = httpx.get(
            f"{deployment.api_urls[0]}/api/v1/chatmessage/{chatflow_id}", params={"chatId": "h1"}, timeout=10
        ).json()
        if rows and rows[-1]["status"] != "running":
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)
    assert rows[-1]["status"] == "aborted", rows
    assert rows[-1]["content"].startswith("t0 t1 t2 t3 t4 ") and len(rows[-1]["content"]) < len(FULL)


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("mode", ["in-process", "worker"])
@pytest.mark.parametrize(
    "script", [{"tokens": ["a ", "b ", "c"]}, {"tokenCount": 7, "failAt": 4}], ids=["ok", "fails"]
)
def test_the_ordering_invariant_holds_in_both_modes(
    mode: str, streaming: bool, script: dict[str, object], request: pytest.FixtureRequest
) -> None:
    """The same chatflow and question give the same events (or the same JSON) in both modes."""
    target: LiveServer | Cluster = request.getfixturevalue("server" if mode == "in-process" else "deployment")
    base = target.base_url if isinstance(target, LiveServer) else target.api_urls[0]
    chatflow_id = target.create_flow(chain_flow(fake_model(**script)))
    response = httpx.post(
        predict_url(base, chatflow_id),
        json={"question": "q", "streaming": streaming, "chatId": "c1"},
        timeout=30,
    )
    failing = "failAt" in script
    if not streaming:
        if failing:
            assert response.status_code == 502, response.text
            assert "scripted failure after 4 tokens" in response.json()["message"]
        else:
            assert response.status_code == 200 and response.json()["text"] == "a b c"
            assert response.json()["chatId"] == "c1"
        return
    frames = parse_frames(response.content)
    text = check_invariant(frames)
    names = [frame.event for frame in frames]
    if failing:
        assert text == "t0 t1 t2 t3 " and names[-2:] == ["error", "end"], names
    else:
        assert text == "a b c" and names == ["start", "token", "token", "token", "metadata", "end"]
        assert frames[-2].data["chatId"] == "c1"


def test_a_worker_killed_mid_answer_is_taken_over_and_the_sdk_sees_the_restart(fresh: Cluster) -> None:
    first = fresh.start_worker()
    chatflow_id = fresh.create_flow(chain_flow(fake_model(**SLOW)))
    seen: list[ev.Event] = []
    with (
        Client(fresh.api_urls[0], timeout=60) as client,
        client.stream(chatflow_id, "go", chat_id="k1") as stream,
    ):
        for event in stream:
            seen.append(event)
            if sum(isinstance(item, ev.Token) for item in seen) == 5:
                os.kill(first.pid, signal.SIGKILL)  # by the pid this test started
                fresh.start_worker()
        result = stream.result()
    restarts = [event for event in seen if isinstance(event, ev.Restart)]
    assert len(restarts) == 1 and restarts[0].attempt == 2, fresh.output()
    assert result.text == FULL  # the SDK forgot what came before the restart
    assert isinstance(seen[-1], ev.End) and sum(isinstance(event, ev.Start) for event in seen) == 1
    stored = httpx.get(
        f"{fresh.api_urls[0]}/api/v1/chatmessage/{chatflow_id}", params={"chatId": "k1"}, timeout=10
    ).json()
    assert [(row["role"], row["content"]) for row in stored] == [("userMessage", "go"), ("apiMessage", FULL)]


def test_a_worker_stopped_mid_answer_hands_its_run_to_another_at_once(
    tmp_path: Path, postgres_url: str
) -> None:
    lease = 9.0  # a crashed worker's run waits this long; a stopped one's a third of it at most
    env = {"STREAMWISE_WORKER_LEASE_SECONDS": str(lease)}
    with cluster(tmp_path, postgres_url, REDIS_URL, workers=0, env=env) as deployment:
        first = deployment.start_worker()
        chatflow_id = deployment.create_flow(chain_flow(fake_model(tokenCount=40, delayMs=150)))
        seen: list[ev.Event] = []
        stopped_at = restarted_at = float("inf")
        with (
            Client(deployment.api_urls[0], timeout=60) as client,
            client.stream(chatflow_id, "go", chat_id="t1") as stream,
        ):
            for event in stream:
                seen.append(event)
                if sum(isinstance(item, ev.Token) for item in seen) == 5 and stopped_at == float("inf"):
                    deployment.start_worker()
                    first.send_signal(signal.SIGTERM)  # a deploy; by the pid this test started
                    stopped_at = time.monotonic()
                if isinstance(event, ev.Restart):
                    restarted_at = time.monotonic()
            result = stream.result()
        assert first.wait(20) == 0, deployment.output()
        restarts = [event for event in seen if isinstance(event, ev.Restart)]
        assert len(restarts) == 1 and restarts[0].attempt == 2, deployment.output()
        assert restarted_at - stopped_at < lease * 2 / 3, (restarted_at - stopped_at, deployment.output())
        assert result.text == FULL
        names = [type(event).__name__ for event in seen]
        assert "Error" not in names and "Abort" not in names and isinstance(seen[-1], ev.End), names
        stored = httpx.get(
            f"{deployment.api_urls[0]}/api/v1/chatmessage/{chatflow_id}",
            params={"chatId": "t1"},
            timeout=10,
        ).json()
        assert [(row["role"], row["content"]) for row in stored] == [
            ("userMessage", "go"),
            ("apiMessage", FULL),
        ]
        assert "handed back" in deployment.output()


def test_a_stalled_worker_is_fenced_and_its_late_writes_are_refused(fresh: Cluster) -> None:
    stalled = fresh.start_worker()
    chatflow_id = fresh.create_flow(chain_flow(fake_model(**SLOW)))
    url = predict_url(fresh.api_urls[0], chatflow_id)

    def stall() -> None:
        os.kill(stalled.pid, signal.SIGSTOP)
        fresh.start_worker()

    raw = stream_acting_once(url, {"question": "go", "streaming": True, "chatId": "s1"}, 5, stall)
    frames = parse_frames(raw)
    assert check_invariant(frames) and _after_restart(frames) == FULL, fresh.output()
    os.kill(stalled.pid, signal.SIGCONT)  # it wakes up past its lease, still holding the run
    log = fresh.logs[1]
    deadline = time.monotonic() + 20
    while "was taken over" not in log.read_text():
        assert time.monotonic() < deadline, fresh.output()
        time.sleep(0.1)
    run_id = raw.split(b"\nid:", 1)[1].split(b":", 1)[0].decode()
    replay = httpx.get(f"{fresh.api_urls[0]}/api/v1/runs/{run_id}/events", timeout=20)
    assert replay.content == raw  # nothing the stalled worker tried to write got in
    stored = httpx.get(
        f"{fresh.api_urls[0]}/api/v1/chatmessage/{chatflow_id}", params={"chatId": "s1"}, timeout=10
    ).json()
    assert [(row["content"], row["status"]) for row in stored][-1] == (FULL, "complete")


def test_a_stream_resumes_on_another_api_node_and_abort_works_from_any_node(
    tmp_path: Path, postgres_url: str
) -> None:
    with cluster(tmp_path, postgres_url, REDIS_URL, api_nodes=2, workers=1) as two:
        chatflow_id = two.create_flow(chain_flow(fake_model(**SLOW)))
        body = {"question": "go", "streaming": True, "detach": True}
        received = b""
        with httpx.stream(
            "POST", predict_url(two.api_urls[0], chatflow_id), json=body, timeout=30
        ) as response:
            run_id = response.headers["x-run-id"]
            for chunk in response.iter_raw():
                received += chunk
                if received.count(b"\n\n") >= 8:
                    break
        # A position the run has not reached is nobody's to resume from; hostile ones are 400s.
        for after in ("100000", str(10**12 - 1), str(10**20), "-1", "x"):
            ahead = httpx.get(
                f"{two.api_urls[1]}/api/v1/runs/{run_id}/events", params={"after": after}, timeout=10
            )
            assert ahead.status_code == 400 and ahead.json()["message"], (after, ahead.text)
        first = received[: received.index(b"\n\n", 0) + 2]
        for _ in range(7):
            first = received[: received.index(b"\n\n", len(first)) + 2]
        rest = httpx.post(
            predict_url(two.api_urls[1], chatflow_id),
            json=body,
            headers={"Last-Event-ID": f"{run_id}:8"},
            timeout=30,
        )
        assert rest.status_code == 200 and rest.headers["x-run-id"] == run_id
        assert check_invariant(parse_frames(first + rest.content)) == FULL

        def abort() -> None:
            done = httpx.put(
                f"{two.api_urls[1]}/api/v1/chatmessage/abort/{chatflow_id}/a1", timeout=10
            ).json()
            assert done["aborted"] == 1

        raw = stream_acting_once(
            predict_url(two.api_urls[0], chatflow_id),
            {"question": "go", "streaming": True, "chatId": "a1"},
            5,
            abort,
        )
        names = [frame.event for frame in parse_frames(raw)]
        assert names[-2:] == ["abort", "end"] and names.count("token") < 40, names


async def test_redis_restarting_mid_run_ends_the_stream_and_new_runs_succeed(
    tmp_path: Path, postgres_url: str, own_redis: OwnRedis
) -> None:
    await own_redis.start()
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    env = {"STREAMWISE_REDIS_TIMEOUT_SECONDS": "2", **FAST_LEASE}
    with cluster(tmp_path, postgres_url, url, workers=1, env=env) as deployment:
        chatflow_id = deployment.create_flow(fake_flow(tokenCount=400, delayMs=50))
        killed_at: list[float] = []

        def kill_redis() -> None:
            own_redis.signal(signal.SIGKILL)
            killed_at.append(time.monotonic())

        raw = await asyncio.to_thread(
            stream_acting_once,
            predict_url(deployment.api_urls[0], chatflow_id),
            {"question": "go", "streaming": True},
            5,
            kill_redis,
        )
        ended_after = time.monotonic() - killed_at[0]
        names = [frame.event for frame in parse_frames(raw)]
        assert names[-2:] == ["error", "end"] and ended_after < 10, (names[-3:], ended_after)
        health = await asyncio.to_thread(httpx.get, f"{deployment.api_urls[0]}/api/v1/health", timeout=10)
        assert health.status_code == 503 and health.json()["redis"]["ok"] is False, health.text
        refused = await asyncio.to_thread(
            httpx.post, predict_url(deployment.api_urls[0], chatflow_id), json={"question": "q"}, timeout=20
        )
        assert refused.status_code == 503, refused.text
        await own_redis.kill()  # reap it, then the same port again, empty
        await own_redis.start()
        fast = deployment.create_flow(fake_flow(tokens=["back ", "again"]))
        deadline = time.monotonic() + 30
        while True:
            response = await asyncio.to_thread(
                httpx.post, predict_url(deployment.api_urls[0], fast), json={"question": "q"}, timeout=20
            )
            if response.status_code == 200:
                break
            assert response.status_code == 503 and time.monotonic() < deadline, response.text
            await asyncio.sleep(0.5)
        assert response.json()["text"] == "back again"


async def test_1000_runs_leave_no_key_pending_entry_consumer_or_subscription(
    tmp_path: Path, postgres_url: str
) -> None:
    env = {"STREAMWISE_RESUME_SECONDS": "1"}
    with cluster(tmp_path, postgres_url, REDIS_URL, workers=2, env=env) as deployment:
        prefix = deployment.prefix
        redis = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5)
        try:
            chatflow_id = deployment.create_flow(fake_flow(tokens=["x ", "y"]))
            url = predict_url(deployment.api_urls[0], chatflow_id)
            gate = asyncio.Semaphore(50)

            async def one(http: httpx.AsyncClient, index: int) -> None:
                async with gate:
                    response = await http.post(url, json={"question": "q", "streaming": index % 2 == 0})
                assert response.status_code == 200, response.text
                if index % 2 == 0:
                    assert check_invariant(parse_frames(response.content)) == "x y"
                else:
                    assert response.json()["text"] == "x y"

            async with httpx.AsyncClient(timeout=60) as http, asyncio.timeout(150):
                await asyncio.gather(*(one(http, index) for index in range(1000)))
            jobs = f"{prefix}:jobs"
            deadline = time.monotonic() + 30  # finished runs' events expire after the resume window
            while await keys_matching(f"{prefix}:*") != [jobs.encode()]:
                assert time.monotonic() < deadline, await keys_matching(f"{prefix}:*")
                await asyncio.sleep(0.2)
            assert await redis.xlen(jobs) == 0
            assert (await redis.xpending(jobs, "workers"))["pending"] == 0
            listening = dict(await redis.pubsub_numsub(f"{prefix}:cancels"))
            assert listening[f"{prefix}:cancels".encode()] == 2  # one listener per worker, not per run
            async with httpx.AsyncClient(timeout=10) as http:
                health = (await http.get(f"{deployment.api_urls[0]}/api/v1/health")).json()
            assert health["redis"] == {"ok": True, "role": "api", "streams": 0}
            for worker in deployment.workers:
                worker.send_signal(signal.SIGTERM)
                worker.wait(20)
            assert await redis.xinfo_consumers(jobs, "workers") == []
            listening = dict(await redis.pubsub_numsub(f"{prefix}:cancels"))
            assert listening[f"{prefix}:cancels".encode()] == 0
        finally:
            await redis.aclose()


def test_a_worker_needs_a_redis_url(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamwise", "worker"],
        env=child_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "STREAMWISE_REDIS_URL" in done.stderr
