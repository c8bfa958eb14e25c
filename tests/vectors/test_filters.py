"""Metadata filters: parsing a node's JSON input, and JSON equality."""

from __future__ import annotations

import pytest

from streamwise.vectors.filters import FilterError, matches, parse, same


def test_parse_takes_objects_and_their_text() -> None:
    assert parse('{"source": "a.pdf", "page": 2}') == {"source": "a.pdf", "page": 2}
    assert parse({"draft": False}) == {"draft": False}
    assert parse("") is None and parse(None) is None and parse("{}") is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{nope", "is not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("3", "must be a JSON object"),
        ({"a": [1]}, "values must be text, numbers or true/false"),
        ({"a": None}, "values must be text, numbers or true/false"),
        ('{"a": {"$eq": 1}}', "operators such as $in are not supported"),
    ],
)
def test_parse_refuses_what_no_backend_can_match(raw: object, message: str) -> None:
    with pytest.raises(FilterError) as refused:
        parse(raw)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("value", "wanted", "equal"),
    [
        ("a", "a", True),
        (1, 1.0, True),
        (2.5, 2.5, True),
        (True, True, True),
        (True, 1, False),
        (1, True, False),
        (0, False, False),
        ("1", 1, False),
        ("true", True, False),
        (None, "None", False),
        ([1], 1, False),
    ],
)
def test_same_is_json_equality(value: object, wanted: str | int | float | bool, equal: bool) -> None:
    assert same(value, wanted) is equal


def test_matches_needs_every_key() -> None:
    metadata = {"source": "a.pdf", "page": 2, "draft": False}

    assert matches(metadata, None) and matches(metadata, {})
    assert matches(metadata, {"source": "a.pdf", "draft": False})
    assert not matches(metadata, {"source": "a.pdf", "page": 3})
    assert not matches(metadata, {"missing": "x"})
