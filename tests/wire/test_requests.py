"""Prediction bodies as the real clients send them, and the bad ones we refuse."""

from __future__ import annotations

import pytest

from streamwise.engine.ports import ChatTurn
from streamwise.wire.requests import BadRequest, decode_body, parse_prediction


def test_python_sdk_body_with_nulls_is_accepted() -> None:
    fields = decode_body(
        b'{"chatflowId": "x", "question": "hi", "streaming": true, "chatId": null, '
        b'"overrideConfig": null, "history": null, "uploads": []}',
        "application/json",
    )
    request = parse_prediction(fields)
    assert request.question == "hi"
    assert request.streaming is True
    assert request.chat_id is None
    assert dict(request.override_config) == {}
    assert request.history == ()


def test_streaming_may_be_the_string_true() -> None:
    assert parse_prediction({"question": "q", "streaming": "true"}).streaming is True
    assert parse_prediction({"question": "q", "streaming": "false"}).streaming is False


def test_form_urlencoded_body_is_read_like_json() -> None:
    request = parse_prediction(
        decode_body(b"question=hi+there&streaming=true", "application/x-www-form-urlencoded")
    )
    assert (request.question, request.streaming) == ("hi there", True)


def test_session_id_comes_from_override_config() -> None:
    request = parse_prediction({"question": "q", "overrideConfig": {"sessionId": "s1", "temperature": 0.1}})
    assert request.session_id == "s1"


def test_history_maps_flowise_roles() -> None:
    request = parse_prediction(
        {
            "question": "q",
            "history": [{"role": "userMessage", "content": "a"}, {"role": "apiMessage", "content": "b"}],
        }
    )
    assert request.history == (ChatTurn("user", "a"), ChatTurn("assistant", "b"))


def test_history_in_the_python_sdk_shape_is_read() -> None:
    history = [
        {"message": "I am Ada.", "type": "userMessage", "role": None, "content": None},
        {"message": "Hi Ada.", "type": "apiMessage", "role": None, "content": None},
    ]
    request = parse_prediction({"question": "q", "history": history})
    assert request.history == (ChatTurn("user", "I am Ada."), ChatTurn("assistant", "Hi Ada."))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "'question' is required"),
        ({"question": 5}, "'question' must be a string"),
        ({"question": ["a"]}, "'question' must be a string"),
        ({"question": "   "}, "must not be empty"),
        ({"question": "q", "streaming": "maybe"}, "'streaming'"),
        ({"question": "q", "overrideConfig": [1]}, "'overrideConfig' must be an object"),
        ({"question": "q", "history": "x"}, "'history' is not valid JSON"),
        ({"question": "q", "history": [{"role": "robot", "content": "x"}]}, "history[0].role"),
        ({"question": "q", "chatId": {"a": 1}}, "'chatId' must be a string"),
    ],
)
def test_bad_fields_are_refused_with_the_field_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_prediction(fields)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"", b"\xff\xfe"])
def test_malformed_json_is_refused(body: bytes) -> None:
    with pytest.raises(BadRequest):
        decode_body(body, "application/json")
