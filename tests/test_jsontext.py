"""JSON from outside: depth limit, lone surrogates named by field, big documents off the loop."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise import jsontext
from streamwise.errors import BadRequest


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def test_a_document_within_the_depth_limit_parses() -> None:
    assert jsontext.loads(nested(jsontext.MAX_DEPTH)) is not None
    assert jsontext.loads(b'{"a": {"b": [1, 2, {"c": null}]}}') == {"a": {"b": [1, 2, {"c": None}]}}


@pytest.mark.parametrize("depth", [jsontext.MAX_DEPTH + 1, 1000, 5000, 100_000])
def test_deeper_documents_are_refused_whatever_the_depth(depth: int) -> None:
    with pytest.raises(BadRequest, match=f"nested deeper than {jsontext.MAX_DEPTH} levels"):
        jsontext.loads(nested(depth))
    with pytest.raises(BadRequest, match="nested deeper"):
        jsontext.loads('{"q": ' + '{"a": ' * depth + "1" + "}" * depth + "}", "Request body")


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ('{"question": "\\ud800"}', "question"),
        ('{"question": "ok", "chatId": "x\\udfffy"}', "chatId"),
        (
            '{"history": [{"role": "userMessage", "content": "a"}, {"content": "\\udc00"}]}',
            "history[1].content",
        ),
        ('{"overrideConfig": {"\\ud800": 1}}', "overrideConfig."),
        ('["\\ud83d"]', "[0]"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_its_field(document: str, field: str) -> None:
    with pytest.raises(BadRequest, match="unpaired surrogate") as caught:
        jsontext.loads(document, "Request body")
    assert f"'{field}" in caught.value.message
    caught.value.message.encode("utf-8")  # the message itself is valid Unicode


def test_a_surrogate_pair_is_a_character_not_an_error() -> None:
    assert jsontext.loads('{"q": "\\ud83d\\ude00"}') == {"q": "😀"}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"{nope", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"NaN", "not valid JSON"),
        (b"1e400", "not valid JSON"),
    ],
)
def test_other_bad_documents_are_bad_requests(document: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        jsontext.loads(document, "flowData")


def test_dumps_is_compact_like_json_stringify() -> None:
    assert jsontext.dumps({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'


async def test_large_documents_are_parsed_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    real = jsontext.loads

    def spy(data: bytes | str, what: str = "Request body") -> object:
        threads.append(threading.current_thread().name)
        return real(data, what)

    monkeypatch.setattr(jsontext, "loads", spy)
    small = json.dumps({"q": "x"})
    large = json.dumps({"q": "x" * (jsontext.OFFLOAD_BYTES + 1)})
    await jsontext.loads_off_loop(small)
    await jsontext.loads_off_loop(large)
    assert threads[0] == threading.current_thread().name
    assert threads[1] != threading.current_thread().name
    assert asyncio.get_running_loop().is_running()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_either_parse_or_are_a_bad_request(data: bytes) -> None:
    try:
        jsontext.loads(data)
    except BadRequest as exc:
        exc.message.encode("utf-8")


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_every_valid_document_round_trips(value: object) -> None:
    assert jsontext.loads(json.dumps(value)) == json.loads(json.dumps(value))
