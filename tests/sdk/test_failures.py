"""Every failure, from `httpx.MockTransport`, through both `Client` and `AsyncClient`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest

from streamwise.client import AsyncClient, Client, errors, events
from tests.support.server import free_port

BASE = "http://sdk.test"
Handler = Callable[[httpx.Request], httpx.Response]
MODES = ["sync", "async"]


def frame(event: str, data: Any) -> bytes:
    return b"message:\ndata:" + json.dumps({"event": event, "data": data}).encode() + b"\n\n"


GOOD = [frame("start", "Hi"), frame("token", "Hi"), frame("token", " there"), frame("end", "[DONE]")]


class Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """Chunks of a body; an exception among them is raised when reached."""

    def __init__(self, chunks: Sequence[bytes | Exception]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk


def sse(chunks: Sequence[bytes | Exception]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Body(chunks))

    return handle


def answer(status: int, body: bytes | str, content_type: str = "application/json", **headers: str) -> Handler:
    content = body.encode() if isinstance(body, str) else body
    return lambda request: httpx.Response(
        status, content=content, headers={"content-type": content_type, **headers}
    )


def flowise_error(status: int, message: str) -> str:
    return json.dumps({"statusCode": status, "success": False, "message": message, "stack": {}})


def stream_events(mode: str, handler: Handler, *, raise_on_error: bool = True) -> list[events.Event]:
    transport = httpx.MockTransport(handler)
    if mode == "sync":
        with (
            Client(BASE, transport=transport) as client,
            client.stream("cf", "q", raise_on_error=raise_on_error) as s,
        ):
            return list(s)

    async def run() -> list[events.Event]:
        async with (
            AsyncClient(BASE, transport=transport) as client,
            client.stream("cf", "q", raise_on_error=raise_on_error) as s,
        ):
            return [event async for event in s]

    return asyncio.run(run())


def call(mode: str, handler: Handler | None, method: str, *args: Any, base: str = BASE, **kwargs: Any) -> Any:
    if mode == "sync":
        sync_transport = httpx.MockTransport(handler) if handler else None
        with Client(base, transport=sync_transport, timeout=2) as client:
            return getattr(client, method)(*args, **kwargs)

    async def run() -> Any:
        async_transport = httpx.MockTransport(handler) if handler else None
        async with AsyncClient(base, transport=async_transport, timeout=2) as client:
            return await getattr(client, method)(*args, **kwargs)

    return asyncio.run(run())


@pytest.mark.parametrize("mode", MODES)
def test_a_good_stream_parses(mode: str) -> None:
    seen = stream_events(mode, sse([b":heartbeat\n\n", *GOOD]))
    assert seen == [events.Start("Hi"), events.Token("Hi"), events.Token(" there"), events.End()]


@pytest.mark.parametrize("mode", MODES)
def test_frames_split_anywhere_still_parse(mode: str) -> None:
    raw = b"".join(GOOD)
    chunks: list[bytes | Exception] = [raw[i : i + 3] for i in range(0, len(raw), 3)]
    assert len(stream_events(mode, sse(chunks))) == 4


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("status", "body", "content_type", "message"),
    [
        (404, flowise_error(404, "Chatflow cf not found"), "application/json", "Chatflow cf not found"),
        (500, flowise_error(500, "boom"), "application/json", "boom"),
        (502, "<html>Bad Gateway</html>", "text/html", "<html>Bad Gateway</html>"),
        (400, '{"detail": "nope"}', "application/json", "nope"),
        (503, "", "text/plain", "Service Unavailable"),
    ],
)
def test_error_statuses_carry_the_server_message(
    mode: str, status: int, body: str, content_type: str, message: str
) -> None:
    handler = answer(status, body, content_type)
    for method, args in [("predict", ("cf", "q")), ("chatflows", ()), ("history", ("cf",))]:
        with pytest.raises(errors.HTTPStatusError) as caught:
            call(mode, handler, method, *args)
        assert (caught.value.status, caught.value.message, caught.value.body) == (status, message, body)
    with pytest.raises(errors.HTTPStatusError) as streamed:
        stream_events(mode, handler)
    assert streamed.value.status == status and streamed.value.message == message


@pytest.mark.parametrize("mode", MODES)
def test_retry_after_is_read(mode: str) -> None:
    handler = answer(429, flowise_error(429, "slow down"), **{"retry-after": "7"})
    with pytest.raises(errors.HTTPStatusError) as caught:
        call(mode, handler, "predict", "cf", "q")
    assert caught.value.retry_after == 7.0 and caught.value.status_code == 429


@pytest.mark.parametrize("mode", MODES)
def test_a_page_that_is_not_an_event_stream(mode: str) -> None:
    with pytest.raises(errors.NotAnEventStream) as caught:
        stream_events(mode, answer(200, "<html>login</html>", "text/html"))
    assert caught.value.content_type == "text/html" and "login" in caught.value.body
    with pytest.raises(errors.NotAnEventStream):
        stream_events(mode, answer(200, '{"not": "a prediction"}'))


@pytest.mark.parametrize("mode", MODES)
def test_a_json_prediction_becomes_events(mode: str) -> None:
    body = {
        "text": "whole",
        "question": "q",
        "chatId": "c",
        "chatMessageId": "m",
        "sourceDocuments": [{"pageContent": "p", "metadata": {"source": "s"}}],
        "usedTools": [{"tool": "t", "toolInput": {}, "toolOutput": "o"}],
        "aborted": True,
    }
    seen = stream_events(mode, answer(200, json.dumps(body)))
    assert [e.name for e in seen] == [
        "start",
        "token",
        "sourceDocuments",
        "usedTools",
        "metadata",
        "abort",
        "end",
    ]
    meta = seen[4]
    assert isinstance(meta, events.Metadata) and (meta.chat_id, meta.chat_message_id) == ("c", "m")


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_without_end_is_closed_early(mode: str) -> None:
    with pytest.raises(errors.StreamClosedEarly) as caught:
        stream_events(mode, sse(GOOD[:3]))
    assert caught.value.text == "Hi there"
    with pytest.raises(errors.StreamClosedEarly):
        stream_events(mode, sse([]))


@pytest.mark.parametrize("mode", MODES)
def test_a_connection_broken_mid_stream_is_closed_early(mode: str) -> None:
    broken = httpx.RemoteProtocolError("peer closed connection without sending complete message body")
    with pytest.raises(errors.StreamClosedEarly) as caught:
        stream_events(mode, sse([*GOOD[:2], broken]))
    assert caught.value.text == "Hi" and isinstance(caught.value.__cause__, httpx.RemoteProtocolError)


@pytest.mark.parametrize("mode", MODES)
def test_an_error_event_raises_or_is_yielded(mode: str) -> None:
    chunks: list[bytes | Exception] = [*GOOD[:2], frame("error", "Node x: failed"), frame("end", "[DONE]")]
    with pytest.raises(errors.StreamError) as caught:
        stream_events(mode, sse(chunks))
    assert caught.value.message == "Node x: failed" and caught.value.text == "Hi"
    seen = stream_events(mode, sse(chunks), raise_on_error=False)
    assert seen[-2:] == [events.Error("Node x: failed"), events.End()]


@pytest.mark.parametrize("mode", MODES)
def test_unknown_events_are_yielded_as_such(mode: str) -> None:
    seen = stream_events(
        mode, sse([frame("start", ""), frame("nextAgent", {"x": 1}), frame("end", "[DONE]")])
    )
    assert seen[1] == events.UnknownEvent("nextAgent", {"x": 1})


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "bad",
    [
        b"message:\ndata:not json\n\n",
        b"message:\ndata:[1, 2]\n\n",
        b'message:\ndata:{"data": "no event"}\n\n',
        b'message:\ndata:{"event": "token"}\n\n',
        b'message:\ndata:{"event": "token", "data": 5}\n\n',
        b'message:\ndata:{"event": "sourceDocuments", "data": "x"}\n\n',
        b'message:\ndata:{"event": "usedTools", "data": [{"toolInput": 1}]}\n\n',
        b'message:\ndata:{"event": "metadata", "data": "x"}\n\n',
        b"message:\ndata:\n\n",
    ],
)
def test_malformed_frames_are_protocol_errors(mode: str, bad: bytes) -> None:
    with pytest.raises(errors.ProtocolError):
        stream_events(mode, sse([GOOD[0], bad, GOOD[-1]]))


@pytest.mark.parametrize("mode", MODES)
def test_a_success_that_is_not_json_is_a_protocol_error(mode: str) -> None:
    with pytest.raises(errors.ProtocolError):
        call(mode, answer(200, "<html/>", "text/html"), "predict", "cf", "q")
    with pytest.raises(errors.ProtocolError):
        call(mode, answer(200, '{"question": "no text"}'), "predict", "cf", "q")
    with pytest.raises(errors.ProtocolError):
        call(mode, answer(200, '{"isStreaming": "yes"}'), "is_streaming", "cf")


@pytest.mark.parametrize("mode", MODES)
def test_timeouts(mode: str) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(errors.Timeout) as caught:
        call(mode, slow, "predict", "cf", "q")
    assert isinstance(caught.value, TimeoutError)
    with pytest.raises(errors.Timeout):
        stream_events(mode, slow)
    with pytest.raises(errors.Timeout):
        stream_events(mode, sse([GOOD[0], httpx.ReadTimeout("timed out")]))


@pytest.mark.parametrize("mode", MODES)
def test_connection_refused(mode: str) -> None:
    refused = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(errors.ConnectionFailed) as caught:
        call(mode, None, "chatflows", base=refused)
    assert isinstance(caught.value, ConnectionError)
    with pytest.raises(errors.ConnectionFailed):
        call(mode, None, "is_streaming", "cf", base=refused)


@pytest.mark.parametrize("mode", MODES)
def test_requests_carry_the_key_and_flowise_fields(mode: str) -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"status": 200, "message": "Chat message aborted"})

    def run_sync() -> None:
        with Client(BASE, api_key="k3y", transport=httpx.MockTransport(record)) as client:
            assert client.abort("cf", "a/b c?") == 0

    async def run_async() -> None:
        async with AsyncClient(BASE, api_key="k3y", transport=httpx.MockTransport(record)) as client:
            assert await client.abort("cf", "a/b c?") == 0

    run_sync() if mode == "sync" else asyncio.run(run_async())
    [request] = sent
    assert request.headers["authorization"] == "Bearer k3y"
    assert request.url.raw_path == b"/api/v1/chatmessage/abort/cf/a%2Fb%20c%3F"


def test_the_prediction_body_uses_flowise_names() -> None:
    bodies: list[Any] = []

    def record(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"text": "ok"})

    with Client(BASE, transport=httpx.MockTransport(record)) as client:
        client.predict(
            "cf",
            "q",
            chat_id="c",
            session_id="s",
            override_config={"temperature": 0},
            history=[{"role": "apiMessage", "content": "hello"}],
        )
    assert bodies == [
        {
            "question": "q",
            "streaming": False,
            "chatId": "c",
            "overrideConfig": {"temperature": 0, "sessionId": "s"},
            "history": [{"role": "apiMessage", "content": "hello"}],
        }
    ]


@pytest.mark.parametrize("mode", MODES)
def test_leaving_early_closes_the_response(mode: str) -> None:
    handler = sse([*GOOD[:2], *[frame("token", "x")] * 50, GOOD[-1]])
    transport = httpx.MockTransport(handler)
    if mode == "sync":
        with Client(BASE, transport=transport) as client:
            with client.stream("cf", "q") as stream:
                for _ in stream:
                    break
            assert stream.response.is_closed and list(stream) == []
        return

    async def run() -> None:
        async with AsyncClient(BASE, transport=transport) as client:
            async with client.stream("cf", "q") as astream:
                async for _ in astream:
                    break
            assert astream.response.is_closed and [e async for e in astream] == []

    asyncio.run(run())
