"""`streamwise.client.flowise` yields what the real `flowise` package yields, and raises where it
would fail silently."""

from __future__ import annotations

import json
from typing import Any

import flowise as original
import httpx
import pytest
import requests

from streamwise.client import errors
from streamwise.client import flowise as facade
from tests.support.flows import fake_flow
from tests.support.server import LiveServer, free_port


def both(
    server: LiveServer, chatflow_id: str, *, api_key: str | None = None, **fields: Any
) -> tuple[list[Any], list[Any]]:
    ours = facade.Flowise(base_url=server.base_url, api_key=api_key)
    theirs = original.Flowise(base_url=server.base_url, api_key=api_key)
    got = list(ours.create_prediction(facade.PredictionData(chatflowId=chatflow_id, **fields)))
    expected = list(theirs.create_prediction(original.PredictionData(chatflowId=chatflow_id, **fields)))
    return got, expected


def without_message_ids(chunks: list[Any]) -> list[Any]:
    cleaned = []
    for chunk in chunks:
        value = json.loads(chunk) if isinstance(chunk, str) else dict(chunk)
        if isinstance(value.get("data"), dict):
            value["data"].pop("chatMessageId", None)
        value.pop("chatMessageId", None)
        cleaned.append(value)
    return cleaned


def test_the_constructor_and_data_classes_match() -> None:
    ours, theirs = facade.Flowise(), original.Flowise()
    assert (ours.base_url, ours.api_key) == (theirs.base_url, theirs.api_key) == ("http://localhost:3000", "")
    assert facade.Flowise(api_key="k")._get_headers() == original.Flowise(api_key="k")._get_headers()
    data = facade.PredictionData("cf", "q")
    assert vars(data) == vars(original.PredictionData("cf", "q"))
    message = facade.IMessage("hi", "userMessage")
    assert vars(message) == vars(original.IMessage("hi", "userMessage"))
    upload = facade.IFileUpload("d", "file", "n", "text/plain")
    assert vars(upload) == vars(original.IFileUpload("d", "file", "n", "text/plain"))


def test_streaming_yields_the_same_json_strings(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(memory="bufferMemory", tokens=["Why", " did", " it", "?"]))
    got, expected = both(server, chatflow_id, question="Joke", chatId="same", streaming=True, api_key="key")
    assert all(isinstance(chunk, str) for chunk in got)
    assert [json.loads(c)["event"] for c in got] == [json.loads(c)["event"] for c in expected]
    assert without_message_ids(got) == without_message_ids(expected)
    assert json.loads(got[-1]) == {"event": "end", "data": "[DONE]"}


def test_non_streaming_yields_the_same_dict(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(memory="bufferMemory", tokens=["Hi"]))
    history = [facade.IMessage("I am Ada.", "userMessage")]
    ours = facade.Flowise(base_url=server.base_url)
    theirs = original.Flowise(base_url=server.base_url)
    [got] = list(
        ours.create_prediction(facade.PredictionData(chatflow_id, "Hello", chatId="n1", history=history))
    )
    [expected] = list(
        theirs.create_prediction(
            original.PredictionData(
                chatflow_id, "Hello", chatId="n2", history=[original.IMessage("I am Ada.", "userMessage")]
            )
        )
    )
    assert isinstance(got, dict)
    assert sorted(got) == sorted(expected) and got["text"] == expected["text"] == "Hi"


def test_a_flow_that_cannot_stream_yields_one_dict_in_both(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["whole"], streaming=False))
    got, expected = both(server, chatflow_id, question="q", chatId="ns", streaming=True)
    assert without_message_ids(got) == without_message_ids(expected)
    assert got[0]["text"] == "whole"


def test_error_events_are_yielded_as_the_original_does(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["a", "b"], failAt=1))
    got, expected = both(server, chatflow_id, question="q", chatId="err", streaming=True)
    assert [json.loads(c)["event"] for c in got] == [json.loads(c)["event"] for c in expected]
    assert json.loads(got[-2])["event"] == "error"


def test_an_unknown_chatflow_raises_our_error_where_the_original_raises_requests(server: LiveServer) -> None:
    with pytest.raises(requests.HTTPError):
        list(original.Flowise(server.base_url).create_prediction(original.PredictionData("nope", "q")))
    with pytest.raises(errors.HTTPStatusError) as caught:
        list(
            facade.Flowise(server.base_url).create_prediction(
                facade.PredictionData("nope", "q", streaming=True)
            )
        )
    assert caught.value.status == 404


def test_nothing_is_sent_before_the_first_next() -> None:
    client = facade.Flowise(base_url=f"http://127.0.0.1:{free_port()}")
    generator = client.create_prediction(facade.PredictionData("cf", "q"))
    with pytest.raises(errors.ConnectionFailed):
        next(generator)


class Routes(httpx.MockTransport):
    """A server whose streaming check says yes and whose prediction answers `body`."""

    def __init__(self, body: httpx.Response) -> None:
        def handle(request: httpx.Request) -> httpx.Response:
            if "chatflows-streaming" in request.url.path:
                assert "authorization" not in request.headers  # as Flowise's SDK: no key on the check
                return httpx.Response(200, json={"isStreaming": True})
            assert request.headers["authorization"] == "Bearer key"
            return body

        super().__init__(handle)


REAL_CLIENT = httpx.Client


def run_with(monkeypatch: pytest.MonkeyPatch, body: httpx.Response) -> list[Any]:
    def patched(*args: Any, **kwargs: Any) -> httpx.Client:
        kwargs["transport"] = Routes(body)
        return REAL_CLIENT(*args, **kwargs)

    monkeypatch.setattr(httpx, "Client", patched)
    sdk = facade.Flowise(base_url="http://flowise.test", api_key="key")
    return list(sdk.create_prediction(facade.PredictionData("cf", "q", streaming=True)))


def test_a_json_answer_to_a_stream_is_an_error_not_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(errors.NotAnEventStream):
        run_with(monkeypatch, httpx.Response(200, json={"text": "hi"}))


def test_a_stream_without_end_is_an_error_not_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    body = b'message:\ndata:{"event":"token","data":"data: x"}\n\n'
    with pytest.raises(errors.StreamClosedEarly):
        run_with(
            monkeypatch, httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
        )
    full = body + b'message:\ndata:{"event":"end","data":"[DONE]"}\n\n'
    got = run_with(
        monkeypatch, httpx.Response(200, content=full, headers={"content-type": "text/event-stream"})
    )
    assert got == ['{"event":"token","data":"data: x"}', '{"event":"end","data":"[DONE]"}']
