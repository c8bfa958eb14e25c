"""The typed events a run emits, one frozen dataclass per Flowise event name.

The engine produces these; `streamwise.wire.frames` is the only place that turns them into bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

EventName = Literal[
    "start",
    "token",
    "sourceDocuments",
    "usedTools",
    "calledTools",
    "metadata",
    "error",
    "abort",
    "end",
    "restart",
]

DONE = "[DONE]"


@dataclass(frozen=True, slots=True)
class Start:
    """The model began producing; `data` is its first chunk of text (often empty)."""

    data: str = ""
    event: ClassVar[EventName] = "start"


@dataclass(frozen=True, slots=True)
class Token:
    data: str
    event: ClassVar[EventName] = "token"


@dataclass(frozen=True, slots=True)
class SourceDocuments:
    data: list[dict[str, Any]]
    event: ClassVar[EventName] = "sourceDocuments"


@dataclass(frozen=True, slots=True)
class UsedTools:
    data: list[dict[str, Any]]
    event: ClassVar[EventName] = "usedTools"


@dataclass(frozen=True, slots=True)
class CalledTools:
    """Tools an agent has just called and is waiting for: `[{"tool", "toolInput", "toolOutput": ""}]`."""

    data: list[dict[str, Any]]
    event: ClassVar[EventName] = "calledTools"


@dataclass(frozen=True, slots=True)
class Metadata:
    """Run facts sent after the answer: only keys that have values are kept."""

    data: dict[str, Any] = field(default_factory=dict)
    event: ClassVar[EventName] = "metadata"


@dataclass(frozen=True, slots=True)
class Error:
    """A human-readable message: no stack traces, no secrets."""

    data: str
    event: ClassVar[EventName] = "error"


@dataclass(frozen=True, slots=True)
class Abort:
    data: str = DONE
    event: ClassVar[EventName] = "abort"


@dataclass(frozen=True, slots=True)
class End:
    data: str = DONE
    event: ClassVar[EventName] = "end"


@dataclass(frozen=True, slots=True)
class Restart:
    """Streamwise's own event, never Flowise's: the worker running the answer was lost and another
    starts it again. Everything the answer sent since `start` is void; what follows is the whole
    answer from its beginning (no second `start`). `data`: `{"attempt": n, "reason": "..."}`."""

    data: dict[str, Any]
    event: ClassVar[EventName] = "restart"


Event = Start | Token | SourceDocuments | UsedTools | CalledTools | Metadata | Error | Abort | End | Restart
