"""Streams over real sockets: the ordering invariant under repetition and concurrency, aborts and
clients that hang up (the model must stop, the partial answer must be stored)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.fake_model import probe
from tests.support.flows import chain_flow, fake_flow, openai_model
from tests.support.openai_stub import StubServer, serve_in_thread
from tests.support.server import LiveServer
from tests.support.sse import Frame, check_invariant, hang_up_after, parse_frames, stream_acting_once


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with serve_in_thread() as running:
        yield running


def post_stream(server: LiveServer, chatflow_id: str, body: dict[str, object]) -> list[Frame]:
    response = httpx.post(
        f"{server.base_url}/api/v1/prediction/{chatflow_id}", json={**body, "streaming": True}, timeout=30
    )
    assert response.status_code == 200, response.text
    return parse_frames(response.content)


def wait_until(check: object, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_200_repeated_streams_keep_the_invariant_and_match_the_json_answer(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokenCount=30))
    expected = "".join(f"t{i} " for i in range(30))
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for index in range(200):
            response = client.post(
                f"/api/v1/prediction/{chatflow_id}", json={"question": f"q{index}", "streaming": True}
            )
            assert check_invariant(parse_frames(response.content)) == expected
        plain = client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "q"}).json()
    assert plain["text"] == expected


async def test_50_concurrent_streams_never_mix_tokens_even_on_one_chat(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(echo=True, delayMs=1))
    limits = httpx.Limits(max_connections=60)

    async def one(client: httpx.AsyncClient, index: int) -> tuple[int, str]:
        chat_id = "shared-chat" if index < 2 else f"chat-{index}"
        body = {"question": f"question-{index}-end", "streaming": True, "chatId": chat_id}
        response = await client.post(f"/api/v1/prediction/{chatflow_id}", json=body)
        return index, check_invariant(parse_frames(response.content))

    async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=limits) as client:
        async with asyncio.timeout(60):
            results = await asyncio.gather(*(one(client, index) for index in range(50)))
    for index, text in results:
        assert text == f"system: Be brief. | user: question-{index}-end"


def test_abort_sends_abort_then_end_and_stores_the_partial_answer(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokenCount=2000, delayMs=5, probe="abort-live"))

    def abort() -> None:
        reply = httpx.put(f"{server.base_url}/api/v1/chatmessage/abort/{chatflow_id}/ab")
        assert reply.json()["aborted"] == 1

    received = stream_acting_once(
        f"{server.base_url}/api/v1/prediction/{chatflow_id}",
        {"question": "q", "streaming": True, "chatId": "ab"},
        after_tokens=5,
        act=abort,
    )
    frames = parse_frames(received)
    assert [frame.event for frame in frames][-2:] == ["abort", "end"]
    text = check_invariant(frames)
    assert 5 * len("t0 ") <= len(text) < len("".join(f"t{i} " for i in range(2000)))
    messages = httpx.get(
        f"{server.base_url}/api/v1/chatmessage/{chatflow_id}", params={"chatId": "ab"}
    ).json()
    api = [m for m in messages if m["role"] == "apiMessage"]
    assert [(m["status"], m["content"]) for m in api] == [("aborted", text)]


def test_client_disconnect_stops_the_fake_model_and_stores_the_partial_answer(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokenCount=5000, delayMs=2, probe="disconnect-live"))
    record = probe(server.services, "disconnect-live")
    body = {"question": "q", "streaming": True, "chatId": "dc"}
    hang_up_after(f"{server.base_url}/api/v1/prediction/{chatflow_id}", body, tokens=1)
    wait_until(lambda: record.cancelled == 1, within=5)
    stopped_at = record.emitted
    time.sleep(0.2)
    assert record.emitted == stopped_at < 5000

    def stored() -> list[dict[str, object]]:
        url = f"{server.base_url}/api/v1/chatmessage/{chatflow_id}"
        result: list[dict[str, object]] = httpx.get(url, params={"chatId": "dc"}).json()
        return result

    wait_until(lambda: len(stored()) == 2, within=5)
    assert stored()[1]["status"] == "aborted"


def test_client_disconnect_closes_the_upstream_openai_stream(server: LiveServer, stub: StubServer) -> None:
    model = openai_model(stub.base_url, modelName="stub?tokens=3000&delay=0.002&case=disconnect")
    chatflow_id = server.create_flow(chain_flow(model))
    body = {"question": "q", "streaming": True}
    hang_up_after(f"{server.base_url}/api/v1/prediction/{chatflow_id}", body, tokens=10)

    def upstream_closed() -> bool:
        records = [r for r in stub.records() if "case=disconnect" in r.model]
        return bool(records) and records[-1].disconnected

    wait_until(upstream_closed, within=5)
    [record] = [r for r in stub.records() if "case=disconnect" in r.model]
    assert record.tokens_sent < 3000 and not record.completed


def test_openai_streamed_text_equals_the_json_text(server: LiveServer, stub: StubServer) -> None:
    chatflow_id = server.create_flow(chain_flow(openai_model(stub.base_url, modelName="stub?tokens=300")))
    streamed = check_invariant(post_stream(server, chatflow_id, {"question": "q"}))
    plain = httpx.post(
        f"{server.base_url}/api/v1/prediction/{chatflow_id}", json={"question": "q"}, timeout=30
    )
    assert streamed == plain.json()["text"] == "".join(f"t{i} " for i in range(300))


def test_upstream_failure_before_the_first_token_is_error_then_end(
    server: LiveServer, stub: StubServer
) -> None:
    model = openai_model(stub.base_url, modelName="stub?status=500&message=overloaded")
    chatflow_id = server.create_flow(chain_flow(model))
    frames = post_stream(server, chatflow_id, {"question": "q"})
    assert [frame.event for frame in frames] == ["error", "end"]
    message = frames[0].data
    assert "chatOpenAI_0" in message and "500" in message
    assert "overloaded" not in message and "127.0.0.1" not in message  # the log has those, not the client


def test_upstream_failure_after_some_tokens_is_error_then_end(server: LiveServer, stub: StubServer) -> None:
    chatflow_id = server.create_flow(
        chain_flow(openai_model(stub.base_url, modelName="stub?tokens=50&drop=7"))
    )
    frames = post_stream(server, chatflow_id, {"question": "q"})
    assert [frame.event for frame in frames][-2:] == ["error", "end"]
    assert check_invariant(frames) == "".join(f"t{i} " for i in range(7))


async def test_150_streams_reach_the_upstream_at_once_not_queued_behind_a_pool_cap(
    server: LiveServer, stub: StubServer
) -> None:
    model = openai_model(stub.base_url, modelName="stub?tokens=40&delay=0.05&case=wide")
    chatflow_id = server.create_flow(chain_flow(model))
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=limits) as client:

        async def one() -> str:
            response = await client.post(
                f"/api/v1/prediction/{chatflow_id}", json={"question": "q", "streaming": True}
            )
            return check_invariant(parse_frames(response.content))

        async with asyncio.timeout(60):
            texts = await asyncio.gather(*(one() for _ in range(150)))
    assert set(texts) == {"".join(f"t{i} " for i in range(40))}
    records = [r for r in stub.records() if "case=wide" in r.model]
    assert len(records) == 150
    # Each answer takes 2 s upstream; all 150 must have been open together at some moment.
    last_start = max(r.started for r in records)
    assert all(r.ended is not None and r.ended > last_start for r in records)
