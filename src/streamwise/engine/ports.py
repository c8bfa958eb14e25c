"""What the engine needs from the outside world, as protocols: node instances and message storage.

Nodes (`streamwise.nodes`) implement the node protocols; storage (`streamwise.store`) implements
`MessageStore`. The engine depends on these shapes only.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]
# What a model hands on at a time: the text chunks one network read (or one decoding step) brought.
# A list, not one string per item: every async-generator layer costs per item, and a 2000-token
# answer crosses two or three of them.
TextChunks = list[str]


@dataclass(frozen=True, slots=True)
class Sources:
    """A part of an answer: the passages it drew on, in Flowise's `{"pageContent", "metadata"}` shape.

    A node may yield it at any point; the run sends them as one `sourceDocuments` event after the
    last token (Flowise's order), stores them with the answer, and returns them in the JSON answer.
    """

    documents: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class ToolsCalled:
    """A part of an answer: the tools an agent has just called, before their results are in.

    The run sends it at once as a `calledTools` event (Flowise's shape: `toolOutput` empty), so a
    client can show "calling calculator...". Nothing of it is stored.
    """

    calls: tuple[dict[str, Any], ...]  # {"tool", "toolInput", "toolOutput": ""}


@dataclass(frozen=True, slots=True)
class ToolUsed:
    """A part of an answer: one finished tool call, `{"tool", "toolInput", "toolOutput",
    "sourceDocuments"?, "error"?}`. The run collects them in call order, sends them as one
    `usedTools` event after the sources, and stores them with the answer, also when it is aborted."""

    record: dict[str, Any]


# What an answering node yields: text (a list of chunks), or other parts of the answer.
Part = TextChunks | Sources | ToolsCalled | ToolUsed
# How a run ended. "interrupted" is set by recovery: the process running it died.
RunStatus = Literal["complete", "aborted", "error", "interrupted"]
# A stored exchange is "running" from the moment its run starts until the run ends.
ExchangeStatus = Literal["running", "complete", "aborted", "error", "interrupted"]


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """One message of a conversation as a chat model sees it."""

    role: Role
    content: str


@runtime_checkable
class ChatModel(Protocol):
    """A chat model node instance.

    `stream` yields lists of text chunks, in order (never an empty list). The first chunk is the
    model's first delta as it came, which may be empty (OpenAI's first delta carries only the role):
    the run sends it as `start`'s data, as Flowise does, and sends no empty token. A model that
    cannot stream yields its whole answer as one chunk. Cancelling the task that iterates `stream`
    (or closing it) must stop generation promptly: close the HTTP response, or tell the local
    decoder to stop.
    """

    @property
    def can_stream(self) -> bool: ...

    def stream(self, messages: Sequence[ChatTurn]) -> AsyncGenerator[TextChunks, None]: ...


@runtime_checkable
class Memory(Protocol):
    """A memory node instance: which earlier turns of this session the model sees."""

    @property
    def memory_type(self) -> str: ...

    async def load(self, session: SessionContext) -> list[ChatTurn]: ...


@runtime_checkable
class Prompt(Protocol):
    """A prompt node instance: turns the question (and prompt values) into chat messages."""

    def render(self, question: str, history: Sequence[ChatTurn]) -> list[ChatTurn]: ...


@runtime_checkable
class Answerer(Protocol):
    """The graph's answering node (a chain): streams the answer to one question."""

    @property
    def can_stream(self) -> bool: ...

    @property
    def memory(self) -> Memory | None: ...

    def answer(self, question: str, session: SessionContext) -> AsyncGenerator[Part, None]: ...


class HistoryReader(Protocol):
    async def history(self, chatflow_id: str, session_id: str, *, limit: int | None = None) -> list[ChatTurn]:
        """Earlier finished turns of a session, oldest first; with `limit`, only the newest ones."""
        ...


@dataclass(frozen=True, slots=True)
class SessionContext:
    """Who is asking, and where their conversation lives."""

    chatflow_id: str
    chat_id: str
    session_id: str
    history: HistoryReader
    # `history` from the request body: seeds memory when nothing is stored for the session.
    seed_history: tuple[ChatTurn, ...] = ()
    # Most earlier turns memory may load (the newest are kept); None: no limit.
    max_history_turns: int | None = None


@dataclass(frozen=True, slots=True)
class Exchange:
    """One question and its answer: stored as "running" when a run starts, then as it ends."""

    run_id: str
    chatflow_id: str
    chat_id: str
    session_id: str
    question: str
    answer: str
    status: ExchangeStatus
    user_message_id: str
    api_message_id: str
    chat_type: str = "EXTERNAL"
    memory_type: str | None = None
    source_documents: list[dict[str, Any]] | None = None
    used_tools: list[dict[str, Any]] | None = None


class MessageStore(HistoryReader, Protocol):
    """Where runs keep their exchanges, so that a crash loses at most the last second of an answer."""

    async def begin_exchange(self, exchange: Exchange) -> None:
        """Store the question, and the answer so far (usually empty), with status "running"."""
        ...

    async def save_partials(self, answers: Sequence[tuple[str, str]]) -> None:
        """(api message id, answer so far) of running exchanges; one no longer running is left alone."""
        ...

    async def save_exchange(self, exchange: Exchange) -> None:
        """Store the exchange as it ended, whether or not `begin_exchange` ever landed."""
        ...


class NodeCatalog(Protocol):
    """The node registry as the engine sees it (see `streamwise.nodes.registry`)."""

    def knows(self, name: str) -> bool: ...

    def category(self, name: str) -> str: ...

    def answers(self, name: str) -> bool:
        """Whether the node can be a graph's answering node."""
        ...

    def protected(self, name: str) -> frozenset[str]:
        """The node's inputs that a request's overrideConfig may not change."""
        ...

    def file_input(self, name: str) -> tuple[str, tuple[str, ...]] | None:
        """A document loader's file input and the file endings it takes; None for other nodes."""
        ...

    def build(self, name: str, node_id: str, inputs: Mapping[str, Any]) -> object:
        """Build one node instance; references in `inputs` are already resolved to instances.

        Raises `streamwise.engine.errors.NodeConfigError` for inputs it cannot use.
        """
        ...


@dataclass(slots=True)
class EmptyHistory:
    turns: list[ChatTurn] = field(default_factory=list)

    async def history(self, chatflow_id: str, session_id: str, *, limit: int | None = None) -> list[ChatTurn]:
        return list(self.turns[-limit:] if limit else self.turns)
