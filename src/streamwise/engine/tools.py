"""What tool calling needs from the outside world, as protocols and values: tools, calls, results.

Tool nodes (`streamwise.nodes.tools`) implement `Tool` (one tool) or `ToolSource` (a node that offers
several, such as an MCP server's); tool-calling chat models implement `ToolCallingModel`; the agent
node runs the loop between them (`streamwise.nodes.agents`). The engine only turns the parts the agent
yields (`CalledTools`, `UsedTools` in `engine/ports.py`) into events.

Conventions every implementation keeps:
- a tool's `name` is what the model calls it by: `^[A-Za-z0-9_-]{1,64}$` (OpenAI's rule);
- `call` raises `ToolFailure` for a failure the model may read and recover from (bad arguments, a
  refused URL, a server that answered an error): its message is shown to the model and stored in
  `usedTools[].error`, so it names no secret, path or internal address; anything else a tool raises
  is reported to the model as a generic failure and logged;
- a tool never blocks the event loop: CPU-bound or blocking work goes to a worker thread, with bounds
  on time and memory;
- cancelling the task that awaits `call` stops the work promptly (abort, disconnect, deadline).
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from streamwise.engine.ports import ChatTurn, SessionContext, TextChunks

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolFailure(Exception):
    """A tool could not do what it was asked; the message goes back to the model as the result."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail  # for the server log only

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class ToolSchema:
    """A tool as the model sees it: name, what it does, and its arguments as a JSON Schema object."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}, "additionalProperties": False}
    )


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool call returned: text for the model, and the passages it found, if any."""

    output: str
    sources: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who the call is for: the run's session and question (for tools that ask another chatflow)."""

    session: SessionContext
    question: str = ""  # the question the agent is answering


@runtime_checkable
class Tool(Protocol):
    """One tool instance, built by a tool node."""

    @property
    def schema(self) -> ToolSchema: ...

    @property
    def side_effects(self) -> bool:
        """Whether calling it may change something outside (an HTTP POST, an MCP tool): such a run
        is never re-run after a crash."""
        ...

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult: ...


@runtime_checkable
class ToolSource(Protocol):
    """A node that offers several tools, found at run time (an MCP server's tool list)."""

    async def tools(self) -> Sequence[Tool]: ...


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call a model asked for. `arguments` is the JSON text as the model wrote it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class AgentTurn:
    """One message of a tool-calling conversation: a chat turn, an assistant turn that called tools,
    or a tool's result (`role` "tool", answering `tool_call_id`)."""

    role: str  # "system", "user", "assistant" or "tool"
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None  # the tool's name, on a "tool" turn (Ollama reads it)

    @classmethod
    def of(cls, turn: ChatTurn) -> AgentTurn:
        return cls(turn.role, turn.content)


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """What a model round yields instead of (or after) text: the calls it asked for, complete."""

    calls: tuple[ToolCall, ...]


@runtime_checkable
class ToolCallingModel(Protocol):
    """A chat model that can call tools (chatOpenAI, chatOllama).

    `stream_with_tools` is one model round: it yields text chunks as they arrive and, at the end of
    the round, at most one `ToolCalls` with every call assembled (arguments joined across deltas, in
    the order the model gave them). Cancelling the iterating task closes the request.
    """

    def stream_with_tools(
        self, messages: Sequence[AgentTurn], tools: Sequence[ToolSchema]
    ) -> AsyncGenerator[TextChunks | ToolCalls, None]: ...


@dataclass(frozen=True, slots=True)
class ChatflowAnswer:
    """What another chatflow answered, for chatflowTool."""

    text: str
    sources: tuple[dict[str, Any], ...] = ()
    used_tools: tuple[dict[str, Any], ...] = ()


class ChatflowCaller(Protocol):
    """Asks another chatflow of this server a question, in this process (no HTTP loop to itself).

    Raises `ToolFailure` when the chatflow does not exist, fails, or chatflows call each other too
    deep (a chatflow that asks itself would never end)."""

    async def ask(self, chatflow_id: str, question: str, *, chat_id: str | None) -> ChatflowAnswer: ...
