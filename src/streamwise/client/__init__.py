"""The Python SDK for Streamwise (and Flowise) servers.

::

    from streamwise.client import Client, events

    with Client("http://127.0.0.1:3000") as client:
        with client.stream(chatflow_id, "Hello!") as stream:
            for event in stream:
                if isinstance(event, events.Token):
                    print(event.data, end="", flush=True)
        print(stream.metadata)

`AsyncClient` has the same methods, awaited. Every error is a `errors.StreamwiseClientError`.
`streamwise.client.flowise` is a drop-in for the `flowise` package. See docs/sdk.md.
"""

from __future__ import annotations

from streamwise.client import errors, events
from streamwise.client._async import AsyncClient, AsyncStream
from streamwise.client._sync import Client, Stream
from streamwise.client.errors import (
    ConnectionFailed,
    HTTPStatusError,
    NotAnEventStream,
    ProtocolError,
    StreamClosedEarly,
    StreamError,
    StreamwiseClientError,
    Timeout,
)
from streamwise.client.models import Chatflow, Message, Prediction, SourceDocument, UpsertResult, UsedTool

__all__ = [
    "AsyncClient",
    "AsyncStream",
    "Chatflow",
    "Client",
    "ConnectionFailed",
    "HTTPStatusError",
    "Message",
    "NotAnEventStream",
    "Prediction",
    "ProtocolError",
    "SourceDocument",
    "Stream",
    "StreamClosedEarly",
    "StreamError",
    "StreamwiseClientError",
    "Timeout",
    "UpsertResult",
    "UsedTool",
    "errors",
    "events",
]
