"""Every failure the Streamwise client raises, under one base class.

::

    StreamwiseClientError                 anything the client raises on purpose
    ├── HTTPStatusError                   the server answered 3xx/4xx/5xx (status, message)
    ├── NotAnEventStream                  a stream was asked for; a 2xx came that is neither an
    │                                     event stream nor a prediction's JSON (status, content_type)
    ├── ProtocolError                     a frame or a JSON answer that does not follow the protocol
    ├── StreamClosedEarly                 the stream ended (or broke) before its `end` event
    ├── StreamError                       the stream carried an `error` event (raise_on_error=True)
    ├── Timeout          (+ TimeoutError) connect, read or write took longer than the timeout
    └── ConnectionFailed (+ ConnectionError) the server could not be reached

`Timeout` and `ConnectionFailed` are also the built-in `TimeoutError` and `ConnectionError`, so
code that already catches those keeps working. The httpx exception that caused an error, if any,
is its `__cause__`.
"""

from __future__ import annotations

import json

import httpx

__all__ = [
    "ConnectionFailed",
    "HTTPStatusError",
    "NotAnEventStream",
    "ProtocolError",
    "StreamClosedEarly",
    "StreamError",
    "StreamwiseClientError",
    "Timeout",
]


class StreamwiseClientError(Exception):
    """The base of every error the client raises."""


class HTTPStatusError(StreamwiseClientError):
    """The server answered with a status that is not a success.

    `message` is the `message` of the server's error JSON
    (`{"statusCode", "success": false, "message", "stack"}`), else the body's text (at most 1000
    characters), else the reason phrase. `body` is the whole body as text.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        body: str = "",
        retry_after: float | None = None,
        url: str = "",
    ) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.body = body
        self.retry_after = retry_after  # from a 429's or 503's Retry-After, in seconds
        self.url = url

    @classmethod
    def from_response(cls, response: httpx.Response) -> HTTPStatusError:
        """The error for a non-success answer whose body has been read."""
        body = response.text
        try:
            payload = json.loads(body) if body else None
        except json.JSONDecodeError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("message"), str):
            message = payload["message"]
        elif isinstance(payload, dict) and isinstance(payload.get("detail"), str):
            message = payload["detail"]
        elif body.strip():
            message = body.strip()[:1000]
        else:
            message = response.reason_phrase or "HTTP error"
        return cls(
            response.status_code,
            message,
            body=body,
            retry_after=_seconds(response.headers.get("retry-after")),
            url=str(response.request.url),
        )

    @property
    def status_code(self) -> int:
        """The same as `status` (httpx's and requests' name)."""
        return self.status


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date


class NotAnEventStream(StreamwiseClientError):
    """A stream was asked for and a 2xx answer came that is not `text/event-stream`.

    A prediction's JSON answer (a flow that cannot stream) is not this error: `Client.stream`
    turns it into events. This is for anything else, such as an HTML page from a proxy.
    """

    def __init__(self, status: int, content_type: str, body: str = "") -> None:
        super().__init__(f"Expected an event stream, got {status} with Content-Type {content_type!r}")
        self.status = status
        self.content_type = content_type
        self.body = body


class ProtocolError(StreamwiseClientError):
    """A frame or an answer the protocol does not allow (bad JSON, a missing or mistyped field)."""


class StreamClosedEarly(StreamwiseClientError):
    """The stream ended, or the connection broke, before the `end` event. `text` is what came."""

    def __init__(self, message: str, text: str = "") -> None:
        super().__init__(message)
        self.text = text


class StreamError(StreamwiseClientError):
    """The server sent an `error` event: the run failed after the stream began.

    `message` is the server's message; `text` is the answer streamed before the failure.
    """

    def __init__(self, message: str, text: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.text = text


class Timeout(StreamwiseClientError, TimeoutError):
    """Connecting, sending, or waiting for the next bytes took longer than the client's timeout."""


class ConnectionFailed(StreamwiseClientError, ConnectionError):
    """The server could not be reached (refused, unresolvable, reset before answering)."""
