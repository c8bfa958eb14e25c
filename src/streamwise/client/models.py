"""What the client returns: frozen dataclasses read from Flowise's JSON, each keeping it as `raw`.

Reading is strict about what the protocol requires (a prediction has a string `text`, a chatflow
an `id`) and raises `ProtocolError` otherwise; optional fields that are absent or null read as
`None` or an empty list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamwise.client.errors import ProtocolError

__all__ = [
    "Chatflow",
    "Message",
    "Prediction",
    "SourceDocument",
    "UpsertResult",
    "UsedTool",
]


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"Expected {what} to be a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProtocolError(f"Expected {what} to be a JSON list, got {type(value).__name__}")
    return value


def _required_str(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"Expected {what} to have a string {key!r}")
    return value


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ProtocolError(f"Expected {key!r} to be a string, got {type(value).__name__}")
    return value


def _optional_bool(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ProtocolError(f"Expected {key!r} to be true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class SourceDocument:
    """A passage a retrieval chain (or a retriever tool) drew on."""

    page_content: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any) -> SourceDocument:
        data = _object(value, "a source document")
        metadata = data.get("metadata") or {}
        return cls(
            page_content=_required_str(data, "pageContent", "a source document"),
            metadata=_object(metadata, "a source document's metadata"),
        )

    @classmethod
    def many(cls, value: Any) -> list[SourceDocument]:
        return [cls.from_json(item) for item in _list(value, "sourceDocuments")]


@dataclass(frozen=True)
class UsedTool:
    """One tool call of an agent. `tool_output` is `""` while the call is only started
    (`calledTools`); `error` is set when the call failed."""

    tool: str
    tool_input: Any
    tool_output: Any
    source_documents: list[SourceDocument] = field(default_factory=list)
    error: str | None = None

    @classmethod
    def from_json(cls, value: Any) -> UsedTool:
        data = _object(value, "a tool call")
        error = data.get("error")
        return cls(
            tool=_required_str(data, "tool", "a tool call"),
            tool_input=data.get("toolInput"),
            tool_output=data.get("toolOutput"),
            source_documents=SourceDocument.many(data.get("sourceDocuments")),
            error=None if error is None else str(error),
        )

    @classmethod
    def many(cls, value: Any) -> list[UsedTool]:
        return [cls.from_json(item) for item in _list(value, "usedTools")]


@dataclass(frozen=True)
class Prediction:
    """A whole answer: the non-streaming response (or a finished stream's events)."""

    text: str
    question: str | None
    chat_id: str | None
    chat_message_id: str | None
    session_id: str | None = None
    memory_type: str | None = None
    source_documents: list[SourceDocument] = field(default_factory=list)
    used_tools: list[UsedTool] = field(default_factory=list)
    aborted: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, value: Any) -> Prediction:
        data = _object(value, "a prediction")
        return cls(
            text=_required_str(data, "text", "a prediction"),
            question=_optional_str(data, "question"),
            chat_id=_optional_str(data, "chatId"),
            chat_message_id=_optional_str(data, "chatMessageId"),
            session_id=_optional_str(data, "sessionId"),
            memory_type=_optional_str(data, "memoryType"),
            source_documents=SourceDocument.many(data.get("sourceDocuments")),
            used_tools=UsedTool.many(data.get("usedTools")),
            aborted=_optional_bool(data, "aborted"),
            raw=data,
        )


@dataclass(frozen=True)
class Chatflow:
    """A chatflow record. `chatbot_config` is the stored JSON text, parsed (None when unset)."""

    id: str
    name: str
    deployed: bool
    is_public: bool
    chatbot_config: dict[str, Any] | None
    flow_data: str = ""
    type: str | None = None
    created_date: str | None = None
    updated_date: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def flow(self) -> dict[str, Any]:
        """`flow_data` parsed: `{"nodes": [...], "edges": [...]}`."""
        parsed = json.loads(self.flow_data) if self.flow_data else {}
        return _object(parsed, "flowData")

    @classmethod
    def from_json(cls, value: Any) -> Chatflow:
        data = _object(value, "a chatflow")
        return cls(
            id=_required_str(data, "id", "a chatflow"),
            name=_optional_str(data, "name") or "",
            deployed=_optional_bool(data, "deployed"),
            is_public=_optional_bool(data, "isPublic"),
            chatbot_config=_json_text(data.get("chatbotConfig"), "chatbotConfig"),
            flow_data=_optional_str(data, "flowData") or "",
            type=_optional_str(data, "type"),
            created_date=_optional_str(data, "createdDate"),
            updated_date=_optional_str(data, "updatedDate"),
            raw=data,
        )


def _json_text(value: Any, key: str) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"Expected {key!r} to hold JSON text: {exc}") from None
    if value is None:
        return None
    return _object(value, key)


@dataclass(frozen=True)
class Message:
    """One stored message: a question (`userMessage`) or an answer (`apiMessage`)."""

    id: str
    role: str
    content: str
    source_documents: list[SourceDocument]
    used_tools: list[UsedTool]
    status: str | None
    chat_id: str | None
    created_date: str | None
    session_id: str | None = None
    memory_type: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, value: Any) -> Message:
        data = _object(value, "a chat message")
        return cls(
            id=_required_str(data, "id", "a chat message"),
            role=_required_str(data, "role", "a chat message"),
            content=_optional_str(data, "content") or "",
            source_documents=_lenient(SourceDocument.many, data.get("sourceDocuments")),
            used_tools=_lenient(UsedTool.many, data.get("usedTools")),
            status=_optional_str(data, "status"),
            chat_id=_optional_str(data, "chatId"),
            created_date=_optional_str(data, "createdDate"),
            session_id=_optional_str(data, "sessionId"),
            memory_type=_optional_str(data, "memoryType"),
            raw=data,
        )


def _lenient(read: Any, value: Any) -> Any:
    """Stored JSON columns may hold text that is not JSON (the server passes it through)."""
    if isinstance(value, str):
        return []
    return read(value)


@dataclass(frozen=True)
class UpsertResult:
    """What an upsert did: counts, and the documents added."""

    num_added: int
    num_updated: int
    num_skipped: int
    num_deleted: int
    added_docs: list[SourceDocument]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, value: Any) -> UpsertResult:
        data = _object(value, "an upsert result")

        def count(key: str) -> int:
            number = data.get(key, 0)
            if not isinstance(number, int) or isinstance(number, bool):
                raise ProtocolError(f"Expected {key!r} to be a number, got {number!r}")
            return number

        return cls(
            num_added=count("numAdded"),
            num_updated=count("numUpdated"),
            num_skipped=count("numSkipped"),
            num_deleted=count("numDeleted"),
            added_docs=SourceDocument.many(data.get("addedDocs")),
            raw=data,
        )
