"""Golden bytes for every frame type: exactly what Flowise's SSEStreamer writes."""

from __future__ import annotations

import json

import pytest

from streamwise.engine.events import (
    Abort,
    End,
    Error,
    Event,
    Metadata,
    SourceDocuments,
    Start,
    Token,
    UsedTools,
)
from streamwise.wire.frames import HEARTBEAT, encode, encode_many, parse_event_id

GOLDEN: list[tuple[Event, bytes]] = [
    (Start(""), b'message:\ndata:{"event":"start","data":""}\n\n'),
    (Start("Hel"), b'message:\ndata:{"event":"start","data":"Hel"}\n\n'),
    (Token("Hello"), b'message:\ndata:{"event":"token","data":"Hello"}\n\n'),
    (Token(" world!"), b'message:\ndata:{"event":"token","data":" world!"}\n\n'),
    (
        SourceDocuments([{"pageContent": "text", "metadata": {"source": "a.txt", "page": 1}}]),
        b'message:\ndata:{"event":"sourceDocuments","data":[{"pageContent":"text",'
        b'"metadata":{"source":"a.txt","page":1}}]}\n\n',
    ),
    (
        UsedTools([{"tool": "calculator", "toolInput": {"input": "2+2"}, "toolOutput": "4"}]),
        b'message:\ndata:{"event":"usedTools","data":[{"tool":"calculator","toolInput":{"input":"2+2"},'
        b'"toolOutput":"4"}]}\n\n',
    ),
    (
        Metadata({"chatId": "c1", "chatMessageId": "m1", "question": "hi", "sessionId": "c1"}),
        b'message:\ndata:{"event":"metadata","data":{"chatId":"c1","chatMessageId":"m1",'
        b'"question":"hi","sessionId":"c1"}}\n\n',
    ),
    (Error("model failed"), b'message:\ndata:{"event":"error","data":"model failed"}\n\n'),
    (Abort(), b'message:\ndata:{"event":"abort","data":"[DONE]"}\n\n'),
    (End(), b'message:\ndata:{"event":"end","data":"[DONE]"}\n\n'),
]


@pytest.mark.parametrize(
    ("event", "expected"), GOLDEN, ids=[e.event + str(i) for i, (e, _) in enumerate(GOLDEN)]
)
def test_each_event_type_encodes_to_flowise_bytes(event: Event, expected: bytes) -> None:
    assert encode(event) == expected


def test_heartbeat_is_an_sse_comment() -> None:
    assert HEARTBEAT == b":heartbeat\n\n"


def test_newlines_and_quotes_stay_on_one_line_as_json_stringify_writes_them() -> None:
    frame = encode(Token('line one\nline "two"\t\\ end'))
    assert frame == b'message:\ndata:{"event":"token","data":"line one\\nline \\"two\\"\\t\\\\ end"}\n\n'
    data_line = frame.split(b"\n")[1]
    assert json.loads(data_line.removeprefix(b"data:")) == {
        "event": "token",
        "data": 'line one\nline "two"\t\\ end',
    }


def test_non_ascii_is_written_as_utf8_not_escaped() -> None:
    assert (
        encode(Token("héllo 👋 日本"))
        == 'message:\ndata:{"event":"token","data":"héllo 👋 日本"}\n\n'.encode()
    )


def test_control_characters_are_escaped_like_json_stringify() -> None:
    assert (
        encode(Token("\x00\x1f\u2028"))
        == 'message:\ndata:{"event":"token","data":"\\u0000\\u001f\u2028"}\n\n'.encode()
    )


def test_a_batch_is_the_frames_back_to_back() -> None:
    events: list[Event] = [Start(""), Token("a"), Token("b"), End()]
    assert encode_many(events) == b"".join(encode(event) for event in events)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("run-1:7", ("run-1", 7)),
        (" a:b:c:12 ", ("a:b:c", 12)),  # the run id is everything before the last colon
        ("run-1:0", ("run-1", 0)),
        ("run-1:", None),
        (":5", None),
        ("5", None),
        ("run-1:-1", None),
        ("run-1:1e3", None),
        ("run-1:\u00b2", None),  # a superscript two: a digit to str.isdigit, not to int()
        ("run-1:\u0661", None),  # an Arabic-Indic one
        ("run-1:" + "9" * 13, None),
        ("run-1:" + "9" * 12, ("run-1", 10**12 - 1)),
    ],
)
def test_an_event_id_is_a_run_id_and_an_ascii_number(value: str, parsed: tuple[str, int] | None) -> None:
    assert parse_event_id(value) == parsed
