"""A drop-in for the `flowise` PyPI package (1.0.4): change `from flowise import ...` to
`from streamwise.client.flowise import ...` and nothing else.

The same classes (`Flowise`, `PredictionData`, `IMessage`, `IFileUpload`) with the same
constructors and attributes, and the same `create_prediction` generator: it first asks
`/api/v1/chatflows-streaming/{id}` (without the API key, as the original does); when the flow
streams and `data.streaming` is true it POSTs with `"streaming": true` and yields the data of every
frame as JSON text (`'{"event":"token","data":"Hi"}'`, through `end`); otherwise it POSTs without
`streaming` and yields the JSON answer once, as a dict. Nothing is sent before the first `next()`.

Where the original fails silently or with a bare `requests` error, this raises the errors of
`streamwise.client.errors`:

- a 4xx/5xx (the original's `requests.HTTPError`) is `HTTPStatusError`, with the server's message;
- a streaming answer that is not an event stream (the original yields nothing) is `NotAnEventStream`;
- a stream that ends or breaks before `end` (the original stops quietly) is `StreamClosedEarly`;
- a malformed frame is `ProtocolError`; timeouts are `Timeout` (the original has no timeout; this
  one waits `timeout` seconds, 60 by default, for each read); an unreachable server is
  `ConnectionFailed`.

An `error` event is yielded as the original yields it (it is the server's answer, not a silence).
A frame's data is yielded exactly as it came; the original's `line.replace('data:', '')` would also
remove `data:` inside a token.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from streamwise.client import _wire
from streamwise.client._sync import Client

__all__ = ["Flowise", "IFileUpload", "IMessage", "PredictionData"]


class IFileUpload:
    def __init__(self, data: str | None, type: str, name: str, mime: str) -> None:
        self.data = data
        self.type = type
        self.name = name
        self.mime = mime


class IMessage:
    def __init__(self, message: str, type: str, role: str | None = None, content: str | None = None) -> None:
        self.message = message
        self.type = type
        self.role = role
        self.content = content


class PredictionData:
    def __init__(
        self,
        chatflowId: str,
        question: str,
        overrideConfig: dict[str, Any] | None = None,
        chatId: str | None = None,
        streaming: bool | None = False,
        history: list[IMessage] | None = None,
        uploads: list[IFileUpload] | None = None,
    ) -> None:
        self.chatflowId = chatflowId
        self.question = question
        self.overrideConfig = overrideConfig
        self.chatId = chatId
        self.streaming = streaming
        self.history = history
        self.uploads = uploads


class Flowise:
    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, *, timeout: float | None = 60.0
    ) -> None:
        self.base_url = base_url or "http://localhost:3000"
        self.api_key = api_key or ""
        self.timeout = timeout

    def _get_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def create_prediction(self, data: PredictionData) -> Generator[Any, None, None]:
        """JSON text per frame when streaming, else the answer's dict once (see the module)."""
        # The streaming check goes without the API key, as Flowise's SDK sends it.
        with Client(self.base_url, None, self.timeout) as anonymous:
            is_streaming_available = anonymous.is_streaming(data.chatflowId)
        payload: dict[str, Any] = {
            "chatflowId": data.chatflowId,
            "question": data.question,
            "overrideConfig": data.overrideConfig,
            "chatId": data.chatId,
        }
        if is_streaming_available and data.streaming:
            payload["streaming"] = data.streaming
        payload["history"] = [vars(message) for message in (data.history or [])]
        payload["uploads"] = [vars(upload) for upload in (data.uploads or [])]
        headers = self._get_headers()
        with Client(self.base_url, None, self.timeout, headers=headers) as client:
            if is_streaming_available and data.streaming:
                with client.open_stream(
                    data.chatflowId, payload, raise_on_error=False, fallback=False
                ) as stream:
                    yield from stream.iter_data()
            else:
                url = _wire.path("prediction", data.chatflowId)
                yield client._call(_wire.Call("POST", url, _wire.as_is, json=payload))
