"""Event-log entries as bytes, for the Redis event log (`streamwise.distributed.eventlog`).

A batch of entries is one JSON array (orjson), one element per entry, in order:

- a token (the log's bare `str` form) is its text, a JSON string: `"Hello"`;
- any other event is `[<class name>, {<field>: <value>, ...}]`, its dataclass fields by name:
  `["Metadata", {"data": {"chatId": "c1"}}]`, `["End", {"data": "[DONE]"}]`. A `Token` event
  passed as an object stays one (`["Token", {"data": "x"}]`), so every entry decodes to an equal one.

Field values must be JSON values (dict with str keys, list, str, int within 64 bits, float, bool,
None), as they must be for the SSE frames anyway; a tuple comes back as a list and a NaN as None
(orjson writes NaN as null). `check_event` refuses what orjson cannot write, so a writer can refuse
a bad event when it is emitted rather than fail a whole batch later. Tokens are not checked one by
one (the hot path): a batch holding a token with a lone surrogate, which is not valid UTF-8, is
written with the surrogate replaced by U+FFFD.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, get_args

import orjson

from streamwise.engine.events import End, Event
from streamwise.engine.sink import Entry as Entry

EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in get_args(Event)}
_FIELDS: dict[type[Any], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in EVENT_TYPES.values()
}


class CodecError(ValueError):
    """An entry that cannot be written as JSON, or bytes that are not a batch of entries."""


def to_value(entry: Entry) -> str | list[Any]:
    """The JSON-ready form of one entry (not yet checked: see `check_event`)."""
    if isinstance(entry, str):
        return entry
    names = _FIELDS.get(type(entry))
    if names is None:
        raise CodecError(f"not an event: {entry!r:.100}")
    return [type(entry).__name__, {name: getattr(entry, name) for name in names}]


def check_event(event: Event) -> list[Any]:
    """`to_value(event)`, after making sure orjson can write it (`CodecError` otherwise)."""
    value = to_value(event)
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise CodecError(f"{type(event).__name__} event cannot be written as JSON: {exc}") from None
    assert isinstance(value, list)
    return value


def from_value(value: Any) -> Entry:
    """The entry a JSON value (as `to_value` gives) stands for; `CodecError` if it is none."""
    if type(value) is str:
        return value
    if type(value) is list and len(value) == 2 and type(value[1]) is dict:
        cls = EVENT_TYPES.get(value[0]) if type(value[0]) is str else None
        if cls is not None:
            try:
                return cls(**value[1])
            except TypeError as exc:
                raise CodecError(f"bad fields for {value[0]}: {exc}") from None
    raise CodecError(f"not an encoded entry: {value!r:.100}")


def dumps_values(values: list[Any]) -> bytes:
    """The JSON array of values from `to_value`/`check_event` (lone surrogates in text replaced)."""
    try:
        return orjson.dumps(values)
    except orjson.JSONEncodeError:
        return orjson.dumps([_scrub(value) for value in values])


def encode_entries(entries: Iterable[Entry]) -> bytes:
    """A batch of entries as bytes; `CodecError` for an event orjson cannot write."""
    values = [entry if isinstance(entry, str) else check_event(entry) for entry in entries]
    return dumps_values(values)


def decode_entries(data: bytes | str) -> tuple[list[Entry], bool]:
    """The entries of a batch, and whether one of them is `End`; `CodecError` for anything else."""
    try:
        values = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"not a batch of entries: {exc}") from None
    if type(values) is not list:
        raise CodecError(f"not a batch of entries: {values!r:.100}")
    entries: list[Entry] = values
    ended = False
    for index, value in enumerate(values):
        if type(value) is not str:  # the rare case: tokens are left as they are
            entry = from_value(value)
            entries[index] = entry
            ended = ended or type(entry) is End
    return entries, ended


def _scrub(value: Any) -> Any:
    """`value` with lone surrogates in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items()}
    return value
