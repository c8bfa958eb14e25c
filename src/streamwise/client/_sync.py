"""The blocking client (`Client`) and its stream (`Stream`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import GeneratorType, TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import EventSource

from streamwise.client import _wire
from streamwise.client import events as ev
from streamwise.client.models import Chatflow, Message, Prediction, UpsertResult

T = TypeVar("T")


class Stream(_wire.StreamView):
    """An open streaming prediction: iterate it for its events (once), or read `text` as it grows.

    Iteration stops after `End`. A stream that ends without `End` raises `StreamClosedEarly`; an
    `error` event raises `StreamError` (or is yielded as `events.Error` with
    `raise_on_error=False`). `close()` hangs up; the server then stops the run and stores the
    partial answer. Use it as a context manager so the connection is always released.
    """

    def __init__(
        self, response: httpx.Response, state: _wire.StreamState, frames: list[_wire.Frame] | None
    ) -> None:
        self.response = response
        super().__init__(state, frames)
        self._frames = self._read()

    def __iter__(self) -> Iterator[ev.Event]:
        return self

    def __next__(self) -> ev.Event:
        return next(self._frames)[1]

    def iter_text(self) -> Iterator[str]:
        """Only the tokens' text (for `st.write_stream` and the like)."""
        for event in self:
            if isinstance(event, ev.Token):
                yield event.data

    def iter_data(self) -> Iterator[str]:
        """Each frame's data as the JSON text it came in: what Flowise's SDK yields."""
        for raw, _ in self._frames:
            yield raw

    def result(self) -> Prediction:
        """Read the rest of the stream; the whole answer as a `Prediction`."""
        for _ in self:
            pass
        return self._state.prediction()

    def _read(self) -> Iterator[_wire.Frame]:
        try:
            if self._fallback is not None:
                for raw, event in self._fallback:
                    yield raw, self._state.accept(event)
                return
            with _wire.translated(self._state):
                for sse in EventSource(self.response).iter_sse():
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
            self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.response.close()
            if isinstance(self._frames, GeneratorType) and not self._frames.gi_running:
                self._frames.close()  # a reader waiting in `for` is done too

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Client:
    """A blocking client for a Streamwise (or Flowise) server. Every method raises the errors of
    `streamwise.client.errors`; see docs/sdk.md."""

    def __init__(
        self,
        base_url: str = _wire.DEFAULT_BASE_URL,
        api_key: str | None = None,
        timeout: float | httpx.Timeout | None = 60.0,
        *,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=_wire.client_headers(api_key, headers),
            timeout=timeout,
            transport=transport,
        )

    def _call(self, call: _wire.Call[T]) -> T:
        with _wire.translated():
            response = self._http.request(**call.request())
        return call.finish(response)

    def chatflows(self) -> list[Chatflow]:
        return self._call(_wire.list_chatflows())

    def chatflow(self, chatflow_id: str) -> Chatflow:
        return self._call(_wire.get_chatflow(chatflow_id))

    def create_chatflow(self, name: str, flow_data: str | Mapping[str, Any], **fields: Any) -> Chatflow:
        return self._call(_wire.create_chatflow(name, flow_data, fields))

    def update_chatflow(self, chatflow_id: str, **fields: Any) -> Chatflow:
        return self._call(_wire.update_chatflow(chatflow_id, fields))

    def delete_chatflow(self, chatflow_id: str) -> None:
        self._call(_wire.delete_chatflow(chatflow_id))

    def is_streaming(self, chatflow_id: str) -> bool:
        return self._call(_wire.is_streaming(chatflow_id))

    def predict(
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
        return self._call(_wire.predict(chatflow_id, body))

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
    ) -> Stream:
        """Start a streaming prediction. The request is sent now: an unknown chatflow raises
        `HTTPStatusError` (404) here. A flow that cannot stream answers JSON, which the stream
        turns into `Start`, `Token`, ..., `End` (`stream.streamed` is then False)."""
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
    ) -> Stream:
        """`stream` with a request body as given (Flowise's field names). With `fallback=False`, a
        JSON answer is `NotAnEventStream` too."""
        request = self._http.build_request(
            "POST",
            _wire.path("prediction", chatflow_id),
            json=dict(body),
            headers={"Accept": "text/event-stream"},
        )
        with _wire.translated():
            response = self._http.send(request, stream=True)
        if response.is_success and _wire.is_event_stream(response):
            return Stream(response, _wire.StreamState(raise_on_error), None)
        try:
            with _wire.translated():
                response.read()
            frames = _wire.not_a_stream(response, fallback=fallback)
        finally:
            response.close()
        return Stream(response, _wire.StreamState(raise_on_error), frames)

    def abort(self, chatflow_id: str, chat_id: str) -> int:
        """Stop the running answers of a chat; how many were running."""
        return self._call(_wire.abort(chatflow_id, chat_id))

    def history(
        self,
        chatflow_id: str,
        *,
        chat_id: str | None = None,
        session_id: str | None = None,
        order: str = "ASC",
    ) -> list[Message]:
        return self._call(_wire.history(chatflow_id, chat_id, session_id, order))

    def delete_history(
        self, chatflow_id: str, *, chat_id: str | None = None, session_id: str | None = None
    ) -> int:
        """Delete stored messages (all of the chatflow's, or one chat's/session's); how many."""
        return self._call(_wire.delete_history(chatflow_id, chat_id, session_id))

    def upsert(
        self,
        chatflow_id: str,
        files: Sequence[_wire.FileItem] | None = None,
        *,
        override_config: Mapping[str, Any] | None = None,
    ) -> UpsertResult:
        return self._call(_wire.upsert(chatflow_id, _wire.read_files(files), override_config))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
