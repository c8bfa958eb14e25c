"""The one place events become bytes, exactly as Flowise's SSEStreamer writes them.

    message:\\ndata:{"event":"token","data":"Hello"}\\n\\n

The JSON is compact, as JavaScript's JSON.stringify writes it, so it always sits on one line
(newlines inside strings are escaped), which is what the npm SDK's line splitting relies on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
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
