"""The prediction request body as Flowise's clients send it, checked and normalised.

Clients differ: the Python SDK sends `"chatId": null, "overrideConfig": null, "uploads": []`; the
npm SDK sends its whole options object (so `chatflowId` and other unknown fields are ignored);
`streaming` may be a boolean or the string "true"; forms send every field as text.

Limits (`RequestLimits`, from settings) bound what one request may make the server hold or send to a
model: the length of each message and the number of history turns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from streamwise import jsontext
from streamwise.engine.ports import ChatTurn
from streamwise.errors import BadRequest, LimitExceeded

__all__ = [
    "BadRequest",
    "PredictionRequest",
    "RequestLimits",
    "decode_body",
    "form_fields",
    "parse_override_config",
    "parse_prediction",
]

_ROLES = {"apiMessage": "assistant", "userMessage": "user", "assistant": "assistant", "user": "user"}
# Longest chatId or sessionId: ids are keys, not documents.
MAX_ID_CHARS = 256
# The integers JSON parsing keeps exact; larger ones arrive as floats.
WHOLE_NUMBERS = range(-(2**63), 2**64)


@dataclass(frozen=True)
class RequestLimits:
    """What one prediction may carry (settings: STREAMWISE_MAX_MESSAGE_CHARS, ..._MAX_HISTORY_TURNS)."""

    max_message_chars: int = 200_000
    max_history_turns: int = 1_000


@dataclass(frozen=True)
class PredictionRequest:
    question: str
    streaming: bool = False
    chat_id: str | None = None
    override_config: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[ChatTurn, ...] = ()
    detach: bool = False  # the run goes on when the client hangs up (it may resume it)

    @property
    def session_id(self) -> str | None:
        value = self.override_config.get("sessionId")
        return str(value) if isinstance(value, str | int) and value != "" else None


def decode_body(body: bytes, content_type: str) -> Mapping[str, Any]:
    """JSON or form-urlencoded bytes → fields. (Multipart is decoded by the HTTP layer.)"""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        try:
            return form_fields(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise BadRequest("Request body is not valid UTF-8") from None
    if not body.strip():
        raise BadRequest("Request body is empty: expected a JSON object with a 'question'")
    decoded = jsontext.loads(body, "Request body")
    if not isinstance(decoded, dict):
        raise BadRequest("Request body must be a JSON object")
    return decoded


def form_fields(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A form's fields; one given more than once holds the list of its values, as JSON would have it
    (so it is refused where one value is expected, rather than one of them being silently chosen)."""
    grouped: dict[str, list[Any]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in grouped.items()}


def parse_prediction(fields: Mapping[str, Any], limits: RequestLimits | None = None) -> PredictionRequest:
    limits = limits or RequestLimits()
    question = fields.get("question")
    if question is None:
        raise BadRequest("Field 'question' is required")
    if not isinstance(question, str):
        raise BadRequest("Field 'question' must be a string")
    if not question.strip():
        raise BadRequest("Field 'question' must not be empty")
    _check_text(question, "question", limits)
    override_config = parse_override_config(fields.get("overrideConfig"))
    return PredictionRequest(
        question=question,
        streaming=_streaming(fields.get("streaming")),
        chat_id=_chat_id(fields.get("chatId")),
        override_config=override_config,
        history=_history(fields.get("history"), limits),
        detach=_streaming(fields.get("detach"), "detach"),
    )


def _check_text(value: str, name: str, limits: RequestLimits) -> None:
    if len(value) > limits.max_message_chars:
        raise LimitExceeded(
            f"Field '{name}' is {len(value):,} characters long; the limit is {limits.max_message_chars:,}"
        )


def _check_id(value: str, name: str) -> None:
    if len(value) > MAX_ID_CHARS:
        raise BadRequest(f"Field '{name}' is longer than {MAX_ID_CHARS} characters")


def _streaming(value: Any, name: str = "streaming") -> bool:
    """true/false, or their text (any case, spaces around; empty is false) as a form sends it."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"true", "false", ""}:
        return value.strip().lower() == "true"
    raise BadRequest(f"Field '{name}' must be true or false")


def _chat_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer() and int(value) in WHOLE_NUMBERS:
        value = int(value)  # JSON does not tell 7.0 from 7 (nor does JavaScript, nor Flowise)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadRequest("Field 'chatId' must be a string")
    _check_id(str(value), "chatId")
    return str(value)


def _maybe_json(value: Any, name: str) -> Any:
    if isinstance(value, str):  # forms carry objects as JSON text
        if not value.strip():
            return None
        return jsontext.loads(value, f"Field '{name}'")
    return value


def parse_override_config(value: Any) -> Mapping[str, Any]:
    """`overrideConfig` as a request gives it (an object, or its JSON text in a form), checked."""
    value = _maybe_json(value, "overrideConfig")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("Field 'overrideConfig' must be an object")
    session_id = value.get("sessionId")
    if isinstance(session_id, str):
        _check_id(session_id, "overrideConfig.sessionId")
    return value


def _history(value: Any, limits: RequestLimits) -> tuple[ChatTurn, ...]:
    value = _maybe_json(value, "history")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadRequest("Field 'history' must be a list of {role, content} objects")
    if len(value) > limits.max_history_turns:
        raise LimitExceeded(
            f"Field 'history' has {len(value):,} turns; the limit is {limits.max_history_turns:,}"
        )
    turns: list[ChatTurn] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise BadRequest(f"history[{index}] must be an object with 'role' and 'content'")
        role = _ROLES.get(str(item.get("role") or item.get("type") or ""))
        # The Python SDK sends {"message": ..., "type": ..., "role": null, "content": null}.
        content = item.get("content") if item.get("content") is not None else item.get("message")
        if role is None:
            raise BadRequest(f"history[{index}].role must be 'apiMessage' or 'userMessage'")
        if not isinstance(content, str):
            raise BadRequest(f"history[{index}].content must be a string")
        _check_text(content, f"history[{index}].content", limits)
        turns.append(ChatTurn(role, content))  # type: ignore[arg-type]
    return tuple(turns)
