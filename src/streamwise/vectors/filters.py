"""Metadata filters: a JSON object of metadata keys and the values they must equal.

Every backend answers the same question: does a document's metadata hold each key with exactly that
value? Values are scalars (text, numbers, true/false); `true` equals neither `1` nor `"true"`, and
`1` equals `1.0`, as in JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

Scalar = str | int | float | bool


class FilterError(ValueError):
    """A filter that is not an object of scalar values; the message says what is wrong."""


def parse(raw: object) -> dict[str, Scalar] | None:
    """A filter from a node input: a JSON object (or its text); None or "" for no filter."""
    if raw is None or raw == "":
        return None
    value = raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise FilterError(f"is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise FilterError("must be a JSON object of metadata keys and the values they must equal")
    checked: dict[str, Scalar] = {}
    for key, wanted in value.items():
        if not isinstance(wanted, str | int | float | bool):
            raise FilterError(
                f"key {key!r}: values must be text, numbers or true/false (operators such as $in "
                "are not supported)"
            )
        checked[str(key)] = wanted
    return checked or None


def same(value: object, wanted: Scalar) -> bool:
    """JSON equality of one metadata value with one filter value."""
    if isinstance(wanted, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value is wanted
    if isinstance(wanted, str) or isinstance(value, str):
        return isinstance(value, str) and isinstance(wanted, str) and value == wanted
    if isinstance(value, int | float):
        return value == wanted
    return False


def matches(metadata: Mapping[str, Any], where: Mapping[str, Any] | None) -> bool:
    if not where:
        return True
    return all(key in metadata and same(metadata[key], wanted) for key, wanted in where.items())
