"""The typed events of a prediction stream, one class per Flowise event name.

`Client.stream` yields these, in the order the server sends them (see docs/protocol.md): `Start`,
`Token`s (with `CalledTools` between them for an agent), `SourceDocuments`, `UsedTools`,
`Metadata`, then `End`; `Error` or `Abort` come just before `End` when the run failed or was
aborted. In scale-out mode a `Restart` may come when the worker answering was lost: the answer
starts again. An event name this client does not know is an `UnknownEvent`, so a newer server does not
break an older client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from streamwise.client.errors import ProtocolError
from streamwise.client.models import Prediction, SourceDocument, UsedTool

__all__ = [
    "Abort",
    "CalledTools",
    "End",
    "Error",
    "Event",
    "Metadata",
    "Restart",
    "SourceDocuments",
    "Start",
    "Token",
    "UnknownEvent",
    "UsedTools",
    "decode_frame",
]


@dataclass(frozen=True)
class Start:
    """The model began: `data` is its first chunk of text (`""` when an agent calls a tool first).
    That chunk also comes as the first `Token`."""

    name: ClassVar[str] = "start"
    data: str


@dataclass(frozen=True)
class Token:
    """A chunk of the answer. The tokens joined are the answer."""

    name: ClassVar[str] = "token"
    data: str


@dataclass(frozen=True)
class SourceDocuments:
    """The passages a retrieval chain drew on, once, after the last token."""

    name: ClassVar[str] = "sourceDocuments"
    documents: list[SourceDocument]


@dataclass(frozen=True)
class CalledTools:
    """An agent's tool calls that have just started (their `tool_output` is `""`)."""

    name: ClassVar[str] = "calledTools"
    tools: list[UsedTool]


@dataclass(frozen=True)
class UsedTools:
    """Every tool call the agent finished, in call order, once, after `SourceDocuments`."""

    name: ClassVar[str] = "usedTools"
    tools: list[UsedTool]


@dataclass(frozen=True)
class Metadata:
    """The exchange's ids; `session_id` and `memory_type` are set when the flow has memory."""

    name: ClassVar[str] = "metadata"
    chat_id: str | None
    chat_message_id: str | None
    question: str | None
    session_id: str | None
    memory_type: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Error:
    """The run failed after the stream began (yielded only with `raise_on_error=False`)."""

    name: ClassVar[str] = "error"
    message: str


@dataclass(frozen=True)
class Abort:
    """The run was aborted (`Client.abort`, or the server stopping it)."""

    name: ClassVar[str] = "abort"


@dataclass(frozen=True)
class End:
    """The last event of every stream."""

    name: ClassVar[str] = "end"


@dataclass(frozen=True)
class Restart:
    """The server lost the worker that was answering, and another starts the answer again: the
    tokens, sources and tools received so far are void, and the whole answer follows (Streamwise's
    own event, in scale-out mode). `Stream.result()` and `Stream.text` forget what came before."""

    name: ClassVar[str] = "restart"
    attempt: int
    reason: str


@dataclass(frozen=True)
class UnknownEvent:
    """An event name this client does not know, with its data as sent."""

    name: ClassVar[str] = "unknown"
    event: str
    data: Any


Event: TypeAlias = (
    Start
    | Token
    | SourceDocuments
    | CalledTools
    | UsedTools
    | Metadata
    | Error
    | Abort
    | End
    | Restart
    | UnknownEvent
)
Frame: TypeAlias = tuple[str, Event]  # a frame's data as it came, and its event


def _frame(name: str, data: Any, event: Event) -> Frame:
    return json.dumps({"event": name, "data": data}, ensure_ascii=False, separators=(",", ":")), event


def prediction_frames(prediction: Prediction) -> list[Frame]:
    raw = prediction.raw
    frames = [_frame("start", prediction.text, Start(prediction.text))]
    if prediction.text:
        frames.append(_frame("token", prediction.text, Token(prediction.text)))
    if prediction.source_documents:
        frames.append(
            _frame("sourceDocuments", raw["sourceDocuments"], SourceDocuments(prediction.source_documents))
        )
    if prediction.used_tools:
        frames.append(_frame("usedTools", raw["usedTools"], UsedTools(prediction.used_tools)))
    keys = ("chatId", "chatMessageId", "question", "sessionId", "memoryType")
    metadata = {key: raw[key] for key in keys if key in raw}
    frames.append(_frame("metadata", metadata, metadata_event(metadata)))
    if prediction.aborted:
        frames.append(_frame("abort", "[DONE]", Abort()))
    frames.append(_frame("end", "[DONE]", End()))
    return frames


def metadata_event(data: Any) -> Metadata:
    if not isinstance(data, dict):
        raise ProtocolError(f"Expected the metadata event's data to be an object, got {data!r}")

    def text(key: str) -> str | None:
        value = data.get(key)
        return None if value is None else str(value)

    return Metadata(
        chat_id=text("chatId"),
        chat_message_id=text("chatMessageId"),
        question=text("question"),
        session_id=text("sessionId"),
        memory_type=text("memoryType"),
        raw=data,
    )


def _text_data(name: str, data: Any) -> str:
    if not isinstance(data, str):
        raise ProtocolError(f"Expected the {name} event's data to be a string, got {data!r}")
    return data


def decode_frame(raw: str) -> Event:
    """One frame's data, `{"event": name, "data": ...}`, as its event; anything else is a
    `ProtocolError`."""
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError:
        raise ProtocolError(f"A frame's data is not JSON: {raw[:200]!r}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str) or "data" not in payload:
        raise ProtocolError(f"A frame's data is not {{'event': name, 'data': ...}}: {raw[:200]!r}")
    name, data = payload["event"], payload["data"]
    if name == "start":
        return Start(_text_data(name, data))
    if name == "token":
        return Token(_text_data(name, data))
    if name == "sourceDocuments":
        return SourceDocuments(SourceDocument.many(data))
    if name == "calledTools":
        return CalledTools(UsedTool.many(data))
    if name == "usedTools":
        return UsedTools(UsedTool.many(data))
    if name == "metadata":
        return metadata_event(data)
    if name == "error":
        return Error(data if isinstance(data, str) else json.dumps(data))
    if name == "abort":
        return Abort()
    if name == "end":
        return End()
    if name == "restart" and isinstance(data, dict):
        attempt = data.get("attempt")
        return Restart(attempt if isinstance(attempt, int) else 0, str(data.get("reason", "")))
    return UnknownEvent(name, data)
