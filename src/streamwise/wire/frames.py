"""The one place events become bytes, exactly as Flowise's SSEStreamer writes them.

    message:\\ndata:{"event":"token","data":"Hello"}\\n\\n

The JSON is compact, as JavaScript's JSON.stringify writes it, so it always sits on one line
(newlines inside strings are escaped), which is what the npm SDK's line splitting relies on.

A stream's frames also carry an `id:` line, `id:<run id>:<n>` (the n-th event of the run), after
`data:`. Both Flowise SDKs read only `data:` lines; EventSource and fetch-event-source remember the
id and send it back as `Last-Event-ID` when they reconnect, which resumes the run from there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from streamwise.engine.events import Event, Token

HEARTBEAT = b":heartbeat\n\n"
_PREFIX = b'message:\ndata:{"event":"'
_TOKEN_PREFIX = b'message:\ndata:{"event":"token","data":'
_SUFFIX = b"}\n\n"

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_dumps = _encoder.encode


def to_json(value: Any) -> str:
    """Compact JSON as JSON.stringify writes it (non-ASCII kept as UTF-8)."""
    return _dumps(value)


def encode(event: Event | str) -> bytes:
    """One frame; a bare string is a token (the form the event log keeps tokens in)."""
    if isinstance(event, str):  # the hot path
        return _TOKEN_PREFIX + _dumps(event).encode() + _SUFFIX
    if type(event) is Token:
        return _TOKEN_PREFIX + _dumps(event.data).encode() + _SUFFIX
    return _PREFIX + event.event.encode() + b'","data":' + _dumps(event.data).encode() + _SUFFIX


def encode_many(events: Iterable[Event | str]) -> bytes:
    return b"".join(map(encode, events))


def event_id(run_id: str, number: int) -> str:
    return f"{run_id}:{number}"


MAX_EVENT_NUMBER = 10**12 - 1  # the largest event number an id may name (12 digits)


def parse_event_id(value: str) -> tuple[str, int] | None:
    """(run id, event number) of an `id:` value such as a client's `Last-Event-ID`; None otherwise."""
    run_id, _, number = value.strip().rpartition(":")
    if not run_id or not (number.isascii() and number.isdigit()) or len(number) > 12:  # not '²'
        return None
    return run_id, int(number)


def encode_numbered(events: Sequence[Event | str], run_id: str, first: int) -> bytes:
    """The frames of `events`, the first being the run's event number `first`, each with its id."""
    prefix = f"}}\nid:{run_id}:".encode()
    parts: list[bytes] = []
    append = parts.append
    for number, event in enumerate(events, first):
        if isinstance(event, str):  # the hot path
            append(_TOKEN_PREFIX + _dumps(event).encode())
        else:
            append(encode(event)[: -len(_SUFFIX)])
        append(prefix + str(number).encode() + b"\n\n")
    return b"".join(parts)
