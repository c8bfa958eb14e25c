"""What the sync and async clients share: the requests they make, reading answers and errors,
decoding frames, and the state of a stream. Nothing here does I/O except reading upload files."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeAlias, TypeVar
from urllib.parse import quote

import httpx

from streamwise import __version__
from streamwise.client import events as ev
from streamwise.client.errors import (
    ConnectionFailed,
    HTTPStatusError,
    NotAnEventStream,
    ProtocolError,
    StreamClosedEarly,
    StreamError,
    Timeout,
)
from streamwise.client.models import Chatflow, Message, Prediction, SourceDocument, UpsertResult, UsedTool

T = TypeVar("T")
DEFAULT_BASE_URL = "http://127.0.0.1:3000"
USER_AGENT = f"streamwise-client/{__version__}"
MAX_MESSAGE_CHARS = 1000
HistoryItem: TypeAlias = Mapping[str, Any] | Message
FileItem: TypeAlias = Path | str | tuple[str, bytes]
Frame: TypeAlias = ev.Frame

# Chatflow fields by their Python names; any other key is sent as given (Flowise's own names work).
FIELD_NAMES = {
    "flow_data": "flowData",
    "is_public": "isPublic",
    "chatbot_config": "chatbotConfig",
    "api_config": "apiConfig",
    "speech_to_text": "speechToText",
    "follow_up_prompts": "followUpPrompts",
}


def client_headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    headers.update(extra or {})
    return headers


def path(*parts: str) -> str:
    """`/api/v1/<part>/<part>`, each part quoted so any id reaches the server as it is."""
    return "/api/v1/" + "/".join(quote(part, safe="") for part in parts)


# Errors ------------------------------------------------------------------------------------------


def error_from_response(response: httpx.Response) -> HTTPStatusError:
    return HTTPStatusError.from_response(response)


@contextmanager
def translated(state: StreamState | None = None) -> Iterator[None]:
    """httpx's transport errors as ours. Within a stream (`state` given) a broken connection is
    `StreamClosedEarly`, carrying the text received."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise Timeout(
            f"Timed out ({type(exc).__name__}): {str(exc) or 'no answer within the timeout'}"
        ) from exc
    except httpx.DecodingError as exc:
        raise ProtocolError(f"Could not decode the answer: {exc}") from exc
    except httpx.TransportError as exc:
        if state is not None:
            raise StreamClosedEarly(
                f"The connection broke before the stream's end ({type(exc).__name__}: {exc})", state.text
            ) from exc
        raise ConnectionFailed(f"Could not reach the server ({type(exc).__name__}: {exc})") from exc


# Calls: one request and how to read its answer ----------------------------------------------------


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    url: str
    parse: Callable[[Any], T]
    params: dict[str, str] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None

    def request(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"method": self.method, "url": self.url}
        for key in ("params", "json", "data", "files"):
            value = getattr(self, key)
            if value is not None:
                kwargs[key] = value
        return kwargs

    def finish(self, response: httpx.Response) -> T:
        """The parsed answer of a response that has been read, or the error it stands for."""
        if not response.is_success:
            raise error_from_response(response)
        return self.parse(read_json(response))


def read_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        snippet = response.text[:200]
        raise ProtocolError(
            f"Expected JSON from {response.request.url}, got "
            f"{response.headers.get('content-type', 'no Content-Type')}: {snippet!r}"
        ) from None


def _many(read: Callable[[Any], T]) -> Callable[[Any], list[T]]:
    def parse(value: Any) -> list[T]:
        if not isinstance(value, list):
            raise ProtocolError(f"Expected a JSON list, got {type(value).__name__}")
        return [read(item) for item in value]

    return parse


def as_is(value: Any) -> Any:
    return value


def _nothing(_: Any) -> None:
    return None


def _is_streaming(value: Any) -> bool:
    if not isinstance(value, dict) or not isinstance(value.get("isStreaming"), bool):
        raise ProtocolError(f"Expected {{'isStreaming': true|false}}, got {value!r}")
    return bool(value["isStreaming"])


def _count(key: str) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        found = value.get(key, 0) if isinstance(value, dict) else None
        if isinstance(found, bool):
            return int(found)
        if not isinstance(found, int):
            raise ProtocolError(f"Expected a count {key!r} in {value!r}")
        return found

    return parse


def chatflow_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    body = {FIELD_NAMES.get(key, key): value for key, value in fields.items()}
    if isinstance(body.get("flowData"), dict):
        body["flowData"] = json.dumps(body["flowData"])
    return body


def list_chatflows() -> Call[list[Chatflow]]:
    return Call("GET", path("chatflows"), _many(Chatflow.from_json))


def get_chatflow(chatflow_id: str) -> Call[Chatflow]:
    return Call("GET", path("chatflows", chatflow_id), Chatflow.from_json)


def create_chatflow(
    name: str, flow_data: str | Mapping[str, Any], fields: Mapping[str, Any]
) -> Call[Chatflow]:
    body = chatflow_fields({**fields, "name": name, "flowData": flow_data})
    if isinstance(flow_data, Mapping):
        body["flowData"] = json.dumps(dict(flow_data))
    return Call("POST", path("chatflows"), Chatflow.from_json, json=body)


def update_chatflow(chatflow_id: str, fields: Mapping[str, Any]) -> Call[Chatflow]:
    return Call("PUT", path("chatflows", chatflow_id), Chatflow.from_json, json=chatflow_fields(fields))


def delete_chatflow(chatflow_id: str) -> Call[None]:
    return Call("DELETE", path("chatflows", chatflow_id), _nothing)


def is_streaming(chatflow_id: str) -> Call[bool]:
    return Call("GET", path("chatflows-streaming", chatflow_id), _is_streaming)


def prediction_body(
    question: str,
    *,
    streaming: bool,
    chat_id: str | None,
    session_id: str | None,
    override_config: Mapping[str, Any] | None,
    history: Sequence[HistoryItem] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"question": question, "streaming": streaming}
    if chat_id is not None:
        body["chatId"] = chat_id
    config = dict(override_config or {})
    if session_id is not None:
        config["sessionId"] = session_id
    if config:
        body["overrideConfig"] = config
    if history is not None:
        body["history"] = [
            {"role": item.role, "content": item.content} if isinstance(item, Message) else dict(item)
            for item in history
        ]
    return body


def predict(chatflow_id: str, body: dict[str, Any]) -> Call[Prediction]:
    return Call("POST", path("prediction", chatflow_id), Prediction.from_json, json=body)


def abort(chatflow_id: str, chat_id: str) -> Call[int]:
    return Call("PUT", path("chatmessage", "abort", chatflow_id, chat_id), _count("aborted"))


def _filters(chat_id: str | None, session_id: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if chat_id is not None:
        params["chatId"] = chat_id
    if session_id is not None:
        params["sessionId"] = session_id
    return params


def history(chatflow_id: str, chat_id: str | None, session_id: str | None, order: str) -> Call[list[Message]]:
    params = {**_filters(chat_id, session_id), "order": order}
    return Call("GET", path("chatmessage", chatflow_id), _many(Message.from_json), params=params)


def delete_history(chatflow_id: str, chat_id: str | None, session_id: str | None) -> Call[int]:
    params = _filters(chat_id, session_id)
    return Call("DELETE", path("chatmessage", chatflow_id), _count("affected"), params=params)


def read_files(files: Sequence[FileItem] | None) -> list[tuple[str, bytes]]:
    """Paths read into (name, bytes); (name, bytes) pairs as given."""
    read: list[tuple[str, bytes]] = []
    for item in files or []:
        if isinstance(item, tuple):
            read.append(item)
        else:
            file = Path(item)
            read.append((file.name, file.read_bytes()))
    return read


def upsert(
    chatflow_id: str, files: list[tuple[str, bytes]], override_config: Mapping[str, Any] | None
) -> Call[UpsertResult]:
    url = path("vector", "upsert", chatflow_id)
    if not files:
        body = {"overrideConfig": dict(override_config)} if override_config is not None else {}
        return Call("POST", url, UpsertResult.from_json, json=body)
    parts = [
        ("files", (name, content, mimetypes.guess_type(name)[0] or "application/octet-stream"))
        for name, content in files
    ]
    data = {"overrideConfig": json.dumps(dict(override_config))} if override_config is not None else None
    return Call("POST", url, UpsertResult.from_json, data=data, files=parts)


# Streams ------------------------------------------------------------------------------------------


def is_event_stream(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.partition(";")[0].strip().lower() == "text/event-stream"


def not_a_stream(response: httpx.Response, *, fallback: bool) -> list[Frame]:
    """A streaming request's answer that is not an event stream, read: an error is raised as
    `HTTPStatusError`; a prediction's JSON (a flow that cannot stream) becomes the events a stream
    of it would have carried (unless not `fallback`); anything else is `NotAnEventStream`."""
    if not response.is_success:
        raise error_from_response(response)
    content_type = response.headers.get("content-type", "")
    try:
        if not fallback:
            raise ProtocolError("a JSON answer where only an event stream will do")
        prediction = Prediction.from_json(response.json())
    except (ProtocolError, ValueError):
        raise NotAnEventStream(
            response.status_code, content_type, response.text[:MAX_MESSAGE_CHARS]
        ) from None
    return ev.prediction_frames(prediction)


@dataclass
class StreamState:
    """What a stream has carried so far."""

    raise_on_error: bool = True
    tokens: list[str] = field(default_factory=list)
    metadata: ev.Metadata | None = None
    source_documents: list[SourceDocument] = field(default_factory=list)
    used_tools: list[UsedTool] = field(default_factory=list)
    called_tools: list[UsedTool] = field(default_factory=list)
    error: str | None = None
    aborted: bool = False
    ended: bool = False

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    def accept(self, event: ev.Event) -> ev.Event:
        if isinstance(event, ev.Token):
            self.tokens.append(event.data)
        elif isinstance(event, ev.SourceDocuments):
            self.source_documents = event.documents
        elif isinstance(event, ev.CalledTools):
            self.called_tools.extend(event.tools)
        elif isinstance(event, ev.UsedTools):
            self.used_tools = event.tools
        elif isinstance(event, ev.Metadata):
            self.metadata = event
        elif isinstance(event, ev.Abort):
            self.aborted = True
        elif isinstance(event, ev.End):
            self.ended = True
        elif isinstance(event, ev.Restart):  # the answer starts again on another worker
            self.tokens.clear()
            self.source_documents, self.used_tools, self.called_tools = [], [], []
        elif isinstance(event, ev.Error):
            self.error = event.message
            if self.raise_on_error:
                raise StreamError(event.message, self.text)
        return event

    def finish(self) -> None:
        """At the end of the body: it must have carried `end`."""
        if not self.ended:
            raise StreamClosedEarly("The stream ended without an 'end' event", self.text)

    def prediction(self) -> Prediction:
        meta = self.metadata
        raw: dict[str, Any] = {"text": self.text, **(meta.raw if meta else {})}
        return Prediction(
            text=self.text,
            question=meta.question if meta else None,
            chat_id=meta.chat_id if meta else None,
            chat_message_id=meta.chat_message_id if meta else None,
            session_id=meta.session_id if meta else None,
            memory_type=meta.memory_type if meta else None,
            source_documents=self.source_documents,
            used_tools=self.used_tools,
            aborted=self.aborted,
            raw=raw,
        )


class StreamView:
    """The parts of a stream read the same way by `Stream` and `AsyncStream`."""

    def __init__(self, state: StreamState, frames: list[Frame] | None) -> None:
        self._state = state
        self._fallback = frames
        self._closed = False

    @property
    def streamed(self) -> bool:
        """False when the flow could not stream and the events were made from its JSON answer."""
        return self._fallback is None

    @property
    def text(self) -> str:
        return self._state.text

    @property
    def metadata(self) -> ev.Metadata | None:
        return self._state.metadata

    @property
    def source_documents(self) -> list[SourceDocument]:
        return self._state.source_documents

    @property
    def used_tools(self) -> list[UsedTool]:
        return self._state.used_tools

    @property
    def aborted(self) -> bool:
        return self._state.aborted

    @property
    def error(self) -> str | None:
        return self._state.error

    @property
    def done(self) -> bool:
        """True once `End` has been read."""
        return self._state.ended

    def result_so_far(self) -> Prediction:
        """The answer as far as it has been read, as a `Prediction`."""
        return self._state.prediction()
