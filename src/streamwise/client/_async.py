"""The asyncio client (`AsyncClient`) and its stream (`AsyncStream`): the same calls as `Client`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Mapping, Sequence
from types import AsyncGeneratorType, TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import EventSource

from streamwise.client import _wire
from streamwise.client import events as ev
from streamwise.client.models import Chatflow, Message, Prediction, UpsertResult

T = TypeVar("T")


class AsyncStream(_wire.StreamView):
    """An async streaming prediction: `async with client.stream(...) as stream: async for event in
    stream`. The request is sent on entering (or on `await client.stream(...)`), so an unknown
    chatflow raises `HTTPStatusError` there. Otherwise as `Stream`."""

    def __init__(
        self, http: httpx.AsyncClient, url: str, body: dict[str, Any], *, raise_on_error: bool, fallback: bool
    ) -> None:
        super().__init__(_wire.StreamState(raise_on_error), None)
        self._http = http
        self._url = url
        self._body = body
        self._allow_fallback = fallback
        self._response: httpx.Response | None = None
        self._frames: AsyncIterator[_wire.Frame] | None = None

    @property
    def response(self) -> httpx.Response:
        if self._response is None:
            raise RuntimeError("The stream is not open yet: use `async with` or `await` it")
        return self._response

    async def open(self) -> AsyncStream:
        """Send the request (once) and read the answer's head."""
        if self._frames is not None:
            return self
        request = self._http.build_request(
            "POST", self._url, json=self._body, headers={"Accept": "text/event-stream"}
        )
        with _wire.translated():
            response = await self._http.send(request, stream=True)
        self._response = response
        if not (response.is_success and _wire.is_event_stream(response)):
            try:
                with _wire.translated():
                    await response.aread()
                self._fallback = _wire.not_a_stream(response, fallback=self._allow_fallback)
            finally:
                await response.aclose()
        self._frames = self._read(response)
        return self

    def __await__(self) -> Generator[Any, None, AsyncStream]:
        return self.open().__await__()

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> ev.Event:
        frames = self._frames or (await self.open())._frames
        assert frames is not None
        return (await anext(frames))[1]

    async def iter_text(self) -> AsyncIterator[str]:
        """Only the tokens' text."""
        async for event in self:
            if isinstance(event, ev.Token):
                yield event.data

    async def iter_data(self) -> AsyncIterator[str]:
        """Each frame's data as the JSON text it came in: what Flowise's SDK yields."""
        frames = self._frames or (await self.open())._frames
        assert frames is not None
        async for raw, _ in frames:
            yield raw

    async def result(self) -> Prediction:
        """Read the rest of the stream; the whole answer as a `Prediction`."""
        async for _ in self:
            pass
        return self._state.prediction()

    async def _read(self, response: httpx.Response) -> AsyncIterator[_wire.Frame]:
        try:
            if self._fallback is not None:
                for raw, event in self._fallback:
                    yield raw, self._state.accept(event)
                return
            with _wire.translated(self._state):
                async for sse in EventSource(response).aiter_sse():
                    event = self._state.accept(ev.decode_frame(sse.data))
                    yield sse.data, event
                    if self._closed or isinstance(event, ev.End):
                        return
            if not self._closed:
                self._state.finish()
        except Exception:
            if not self._closed:
                raise
        finally:
            await self.close()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._response is not None:
                await self._response.aclose()
            if isinstance(self._frames, AsyncGeneratorType) and not self._frames.ag_running:
                await self._frames.aclose()  # a reader waiting in `async for` is done too

    aclose = close

    async def __aenter__(self) -> AsyncStream:
        return await self.open()

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class AsyncClient:
    """The asyncio twin of `Client`: the same methods, awaited; `stream` is entered with
    `async with` (or awaited)."""

    def __init__(
        self,
        base_url: str = _wire.DEFAULT_BASE_URL,
        api_key: str | None = None,
        timeout: float | httpx.Timeout | None = 60.0,
        *,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=_wire.client_headers(api_key, headers),
            timeout=timeout,
            transport=transport,
        )

    async def _call(self, call: _wire.Call[T]) -> T:
        with _wire.translated():
            response = await self._http.request(**call.request())
        return call.finish(response)

    async def chatflows(self) -> list[Chatflow]:
        return await self._call(_wire.list_chatflows())

    async def chatflow(self, chatflow_id: str) -> Chatflow:
        return await self._call(_wire.get_chatflow(chatflow_id))

    async def create_chatflow(self, name: str, flow_data: str | Mapping[str, Any], **fields: Any) -> Chatflow:
        return await self._call(_wire.create_chatflow(name, flow_data, fields))

    async def update_chatflow(self, chatflow_id: str, **fields: Any) -> Chatflow:
        return await self._call(_wire.update_chatflow(chatflow_id, fields))

    async def delete_chatflow(self, chatflow_id: str) -> None:
        await self._call(_wire.delete_chatflow(chatflow_id))

    async def is_streaming(self, chatflow_id: str) -> bool:
        return await self._call(_wire.is_streaming(chatflow_id))

    async def predict(
        self,
        chatflow_id: str,
        question: str,
        *,
        chat_id: str | None = None,
        session_id: str | None = None,
        override_config: Mapping[str, Any] | None = None,
        history: Sequence[_wire.HistoryItem] | None = None,
    ) -> Prediction:
        body = _wire.prediction_body(
            question,
            streaming=False,
            chat_id=chat_id,
            session_id=session_id,
            override_config=override_config,
            history=history,
        )
        return await self._call(_wire.predict(chatflow_id, body))

    def stream(
        self,
        chatflow_id: str,
        question: str,
        *,
        chat_id: str | None = None,
        session_id: str | None = None,
        override_config: Mapping[str, Any] | None = None,
        history: Sequence[_wire.HistoryItem] | None = None,
        raise_on_error: bool = True,
    ) -> AsyncStream:
        body = _wire.prediction_body(
            question,
            streaming=True,
            chat_id=chat_id,
            session_id=session_id,
            override_config=override_config,
            history=history,
        )
        return self.open_stream(chatflow_id, body, raise_on_error=raise_on_error)

    def open_stream(
        self, chatflow_id: str, body: Mapping[str, Any], *, raise_on_error: bool = True, fallback: bool = True
    ) -> AsyncStream:
        """`stream` with a request body as given (Flowise's field names)."""
        url = _wire.path("prediction", chatflow_id)
        return AsyncStream(self._http, url, dict(body), raise_on_error=raise_on_error, fallback=fallback)

    async def abort(self, chatflow_id: str, chat_id: str) -> int:
        return await self._call(_wire.abort(chatflow_id, chat_id))

    async def history(
        self,
        chatflow_id: str,
        *,
        chat_id: str | None = None,
        session_id: str | None = None,
        order: str = "ASC",
    ) -> list[Message]:
        return await self._call(_wire.history(chatflow_id, chat_id, session_id, order))

    async def delete_history(
        self, chatflow_id: str, *, chat_id: str | None = None, session_id: str | None = None
    ) -> int:
        return await self._call(_wire.delete_history(chatflow_id, chat_id, session_id))

    async def upsert(
        self,
        chatflow_id: str,
        files: Sequence[_wire.FileItem] | None = None,
        *,
        override_config: Mapping[str, Any] | None = None,
    ) -> UpsertResult:
        read = await asyncio.to_thread(_wire.read_files, files)
        return await self._call(_wire.upsert(chatflow_id, read, override_config))

    async def close(self) -> None:
        await self._http.aclose()

    aclose = close

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
