"""Prediction bodies as the real clients send them, and the bad ones we refuse."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise.engine.ports import ChatTurn
from streamwise.errors import LimitExceeded
from streamwise.wire.requests import BadRequest, RequestLimits, decode_body, parse_prediction


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
        ({"question": "q", "history": "[" * 200 + "]" * 200}, "'history' is nested deeper"),
        ({"question": "q", "overrideConfig": '{"a":' * 100 + "1" + "}" * 100}, "'overrideConfig' is nested"),
        ({"question": "q", "history": [{"role": "robot", "content": "x"}]}, "history[0].role"),
        ({"question": "q", "chatId": {"a": 1}}, "'chatId' must be a string"),
        ({"question": "q", "chatId": "c" * 257}, "'chatId' is longer than 256"),
        ({"question": "q", "overrideConfig": {"sessionId": "s" * 300}}, "'overrideConfig.sessionId'"),
    ],
)
def test_bad_fields_are_refused_with_the_field_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_prediction(fields)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"", b"\xff\xfe"])
def test_malformed_json_is_refused(body: bytes) -> None:
    with pytest.raises(BadRequest):
        decode_body(body, "application/json")


LIMITS = RequestLimits(max_message_chars=100, max_history_turns=3)


def test_a_question_over_the_message_limit_is_refused() -> None:
    parse_prediction({"question": "q" * 100}, LIMITS)
    with pytest.raises(LimitExceeded, match=r"'question' is 101 characters long; the limit is 100"):
        parse_prediction({"question": "q" * 101}, LIMITS)


def test_history_over_the_turn_limit_or_with_a_long_turn_is_refused() -> None:
    turn = {"role": "userMessage", "content": "x"}
    parse_prediction({"question": "q", "history": [turn] * 3}, LIMITS)
    with pytest.raises(LimitExceeded, match=r"'history' has 4 turns; the limit is 3"):
        parse_prediction({"question": "q", "history": [turn] * 4}, LIMITS)
    with pytest.raises(LimitExceeded, match=r"history\[1\].content"):
        parse_prediction({"question": "q", "history": [turn, {**turn, "content": "y" * 101}]}, LIMITS)


def test_a_form_field_holding_deep_json_is_a_bad_request_not_a_crash() -> None:
    body = b"question=hi&overrideConfig=" + b"%5B" * 5000 + b"%5D" * 5000
    fields = decode_body(body, "application/x-www-form-urlencoded")
    with pytest.raises(BadRequest, match="nested deeper"):
        parse_prediction(fields)


field_values = (
    st.none() | st.booleans() | st.integers() | st.text(max_size=30) | st.lists(st.text(max_size=5))
)
bodies = st.dictionaries(
    st.sampled_from(["question", "streaming", "chatId", "overrideConfig", "history", "uploads", "x"]),
    field_values
    | st.dictionaries(st.text(max_size=5), field_values, max_size=3)
    | st.lists(st.dictionaries(st.sampled_from(["role", "content", "type", "message"]), field_values)),
    max_size=6,
)


@settings(max_examples=400, deadline=None)
@given(bodies)
def test_any_body_is_either_a_request_or_a_bad_request(fields: dict[str, object]) -> None:
    try:
        request = parse_prediction(fields)
    except BadRequest as exc:
        assert exc.message
        return
    assert isinstance(request.question, str) and request.question.strip()
    assert all(isinstance(turn, ChatTurn) for turn in request.history)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300), st.sampled_from(["application/json", "application/x-www-form-urlencoded", ""])
)
def test_any_bytes_decode_or_are_a_bad_request(body: bytes, content_type: str) -> None:
    with contextlib.suppress(BadRequest):
        parse_prediction(decode_body(body, content_type))
