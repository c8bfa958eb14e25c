"""One run: a question answered by an `Answerer`, emitting events to its own log.

Lifecycle, whatever happens: `start` before the first `token`; then exactly one of
metadata (success), `abort` (cancelled by a user or a departed client) or `error` (model failure or
server shutdown); the exchange is stored with its status (partial answers included); `end` comes
last, exactly once.

Storage is crash-safe and stays off the token path: the question is written by a task of its own
right after the first token has gone out (or `QUESTION_WRITE_DELAY` after the start, if the model
is slower), the growing answer is saved by the `RunManager`'s checkpointer (`partial`), and the
final write waits for the first.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from streamwise.engine.eventlog import EventLog
from streamwise.engine.events import (
    Abort,
    CalledTools,
    End,
    Error,
    Metadata,
    SourceDocuments,
    Start,
    UsedTools,
)
from streamwise.engine.pacing import Pacer
from streamwise.engine.ports import (
    Answerer,
    ChatTurn,
    Exchange,
    ExchangeStatus,
    MessageStore,
    RunStatus,
    SessionContext,
    Sources,
    ToolsCalled,
    ToolUsed,
)
from streamwise.engine.sink import EventSink
from streamwise.errors import (
    InternalError,
    ModelTimeout,
    ShuttingDown,
    StorageError,
    StreamwiseError,
    Unavailable,
)

logger = logging.getLogger("streamwise.run")

# "lost": the run's events can no longer be delivered (a worker that lost its Redis).
CancelReason = Literal["abort", "disconnect", "shutdown", "deadline", "lost"]
SHUTDOWN_MESSAGE = "server shutting down"
DEADLINE_MESSAGE = "The answer did not finish within its deadline"
LOST_MESSAGE = "The answer was stopped: its events could no longer be delivered"
# The question is stored after the first token, so that writing it never delays that token; a model
# slower than this gets its question stored while it thinks.
QUESTION_WRITE_DELAY = 0.05
COMPACT_EVERY = 4096  # chunks of the answer kept apart before they are joined


@dataclass(frozen=True)
class RunRequest:
    chatflow_id: str
    question: str
    chat_id: str
    session_id: str
    chat_type: str = "EXTERNAL"
    seed_history: tuple[ChatTurn, ...] = ()
    max_history_turns: int | None = None


@dataclass
class RunOutcome:
    status: RunStatus
    text: str
    error: str | None  # what the client is told
    chat_message_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    failure: StreamwiseError | None = None  # why it failed, for the transport to map
    source_documents: list[dict[str, Any]] = field(default_factory=list)
    used_tools: list[dict[str, Any]] = field(default_factory=list)


def _absorb_cancellation() -> None:
    """The run handles its own cancellation: undo the request so later awaits are not cut short."""
    current = asyncio.current_task()
    if current is not None:
        current.uncancel()


class Run:
    def __init__(
        self,
        request: RunRequest,
        answerer: Answerer,
        store: MessageStore,
        pacer: Pacer | None = None,
        *,
        log: EventLog | None = None,
        crash_safe: bool = True,
        sink: EventSink | None = None,
        run_id: str | None = None,
        message_ids: tuple[str, str] | None = None,
    ) -> None:
        self.id = run_id or str(uuid.uuid4())
        self.crash_safe = crash_safe  # store the question as the run starts
        self.pacer = pacer or Pacer()
        self.request = request
        self.answerer = answerer
        self.store = store
        # Where the events go: this process's own log (in-process runs, read by the SSE response), or
        # a sink of the caller's (a worker's Redis stream), and then there is no local log.
        self.log: EventLog | None = None
        if sink is None:
            self.log = log if log is not None else EventLog()
            sink = self.log
        self.sink: EventSink = sink
        # (question, answer) message ids: given when a run is taken over, so it keeps its rows.
        self.user_message_id, self.chat_message_id = message_ids or (str(uuid.uuid4()), str(uuid.uuid4()))
        self.cancel_reason: CancelReason | None = None
        self.outcome: RunOutcome | None = None
        memory = answerer.memory
        self.memory_type = memory.memory_type if memory is not None else None
        self.parts: list[str] = []  # the answer so far (see `_compact`)
        self.tokens = 0  # chunks received so far
        self.sources: list[dict[str, Any]] = []  # the passages the answer drew on
        self.used_tools: list[dict[str, Any]] = []  # the tool calls an agent finished, in order
        self._compacted = 0  # parts[:_compacted] are joined runs of chunks
        self._saved_tokens = 0  # how much of it the last partial save held
        self._begin: asyncio.Task[None] | None = None
        self._task: asyncio.Task[RunOutcome] | None = None
        self._entered = False  # the task began executing (before that, cancel() only marks it)

    @property
    def local_log(self) -> EventLog:
        """This process's log of the run's events; `ValueError` for a run whose events go elsewhere."""
        if self.log is None:
            raise ValueError(f"{self!r} writes its events to a sink of its own")
        return self.log

    def __repr__(self) -> str:
        return f"<Run {self.id} chatflow={self.request.chatflow_id} chat={self.request.chat_id}>"

    def start(self) -> asyncio.Task[RunOutcome]:
        if self._task is None:
            self._task = asyncio.create_task(self._execute(), name=f"run-{self.id}")
        return self._task

    def cancel(self, reason: CancelReason) -> bool:
        """Stop the run; False when it had already finished or was already being stopped."""
        if self._task is None or self._task.done() or self.cancel_reason is not None:
            return False
        self.cancel_reason = reason
        if self._entered:
            self._task.cancel()
        # Otherwise the task has not taken its first step: cancelling it now would skip the whole
        # lifecycle (no abort, no end). It sees `cancel_reason` as it starts instead.
        return True

    async def wait(self) -> RunOutcome:
        return await asyncio.shield(self.start())

    def partial(self) -> tuple[str, str] | None:
        """(answer message id, answer so far) when it grew since the last call and the question is
        stored; None otherwise. For the checkpointer, which saves running answers in batches."""
        begin = self._begin
        if self.outcome is not None or begin is None or not begin.done() or begin.exception() is not None:
            return None
        if self.tokens == self._saved_tokens:
            return None
        self._saved_tokens = self.tokens
        return self.chat_message_id, "".join(self.parts)

    def _compact(self) -> None:
        """Join the newest chunks into one string: a long answer held as a million small strings took
        ten times its size in memory, and every partial save had to join them all again."""
        parts = self.parts
        parts[self._compacted :] = ["".join(parts[self._compacted :])]
        self._compacted += 1

    def _exchange(self, answer: str, status: ExchangeStatus) -> Exchange:
        request = self.request
        return Exchange(
            run_id=self.id,
            chatflow_id=request.chatflow_id,
            chat_id=request.chat_id,
            session_id=request.session_id,
            question=request.question,
            answer=answer,
            status=status,
            user_message_id=self.user_message_id,
            api_message_id=self.chat_message_id,
            chat_type=request.chat_type,
            memory_type=self.memory_type,
            source_documents=list(self.sources) or None,
            used_tools=list(self.used_tools) or None,
        )

    def _begin_storing(self) -> None:
        if self._begin is None and self.outcome is None:
            self._begin = asyncio.ensure_future(self._store_question())

    async def _store_question(self) -> None:
        try:
            await self.store.begin_exchange(self._exchange("", "running"))
        except Exception as exc:  # the final write inserts what is missing
            logger.warning("run %s: storing the question failed: %r", self.id, exc)
            raise

    async def _execute(self) -> RunOutcome:
        self._entered = True
        request = self.request
        log: EventSink = self.sink
        timer = (
            asyncio.get_running_loop().call_later(QUESTION_WRITE_DELAY, self._begin_storing)
            if self.crash_safe
            else None
        )
        session = SessionContext(
            chatflow_id=request.chatflow_id,
            chat_id=request.chat_id,
            session_id=request.session_id,
            history=self.store,
            seed_history=request.seed_history,
            max_history_turns=request.max_history_turns,
        )
        parts = self.parts
        sources = self.sources
        used_tools = self.used_tools
        status: RunStatus = "complete"
        failure: StreamwiseError | None = None
        started = False
        budget = 1  # yield after the first token, so it goes out at once
        try:
            if self.cancel_reason is not None:
                raise asyncio.CancelledError  # cancelled before it began
            async for part in self.answerer.answer(request.question, session):
                if type(part) is not list:
                    if isinstance(part, Sources):
                        sources.extend(part.documents)
                    elif isinstance(part, ToolUsed):
                        used_tools.append(part.record)
                    elif isinstance(part, ToolsCalled):
                        if not started:
                            log.emit(Start(""))  # the agent is at work: start comes first
                            started = True
                        log.emit(CalledTools(list(part.calls)))
                    continue
                if not started:
                    log.emit(Start(part[0] if part else ""))
                    started = True
                texts = part if all(part) else [chunk for chunk in part if chunk]
                if texts:
                    parts.extend(texts)
                    self.tokens += len(texts)
                    if len(parts) - self._compacted > COMPACT_EVERY:
                        self._compact()
                    log.emit_tokens(texts)
                    budget -= len(texts)
                if budget <= 0:
                    # Let the writer and the other runs go on (see engine/pacing.py).
                    await asyncio.sleep(0)
                    budget = self.pacer.burst()
                    if self._begin is None and timer is not None:
                        self._begin_storing()  # the first token is on its way: store the question
        except asyncio.CancelledError:
            if self.cancel_reason is None:
                raise  # not ours: the event loop is going away
            _absorb_cancellation()
            if self.cancel_reason == "shutdown":
                status, failure = "error", ShuttingDown(SHUTDOWN_MESSAGE)
                log.emit(Error(SHUTDOWN_MESSAGE))
            elif self.cancel_reason == "deadline":
                status, failure = "error", ModelTimeout(DEADLINE_MESSAGE)
                log.emit(Error(DEADLINE_MESSAGE))
            elif self.cancel_reason == "lost":
                status, failure = "error", Unavailable(LOST_MESSAGE)
                log.emit(Error(LOST_MESSAGE))
            else:
                status = "aborted"
                log.emit(Abort())
        except StreamwiseError as exc:
            status, failure = "error", exc
            detail = f" ({exc.detail})" if exc.detail else ""
            logger.warning("run %s failed: %s%s", self.id, exc.message, detail)
            log.emit(Error(exc.message))
        except Exception as exc:
            status = "error"
            failure = InternalError(
                f"The answer failed unexpectedly (run {self.id}; the server log has more)"
            )
            logger.error("run %s failed unexpectedly", self.id, exc_info=exc)
            log.emit(Error(failure.message))

        if timer is not None:
            timer.cancel()
        text = "".join(parts)
        metadata: dict[str, Any] = {
            "chatId": request.chat_id,
            "chatMessageId": self.chat_message_id,
            "question": request.question,
        }
        if self.memory_type:
            metadata["sessionId"] = request.session_id
            metadata["memoryType"] = self.memory_type
        save_error = await self._store_despite_cancellation(text, status)
        if save_error is not None:
            logger.error("run %s: storing the exchange failed: %r", self.id, save_error)
            if status == "complete":
                status, failure = "error", StorageError("The answer could not be stored")
                log.emit(Error(failure.message))
        if status == "complete":
            if sources:
                log.emit(SourceDocuments(list(sources)))
            if used_tools:
                log.emit(UsedTools(list(used_tools)))
            log.emit(Metadata(metadata))
        error = failure.message if failure is not None else None
        self.outcome = RunOutcome(
            status,
            text,
            error,
            self.chat_message_id,
            metadata,
            failure,
            source_documents=list(sources),
            used_tools=list(used_tools),
        )
        log.emit(End())
        return self.outcome

    async def _store_despite_cancellation(self, text: str, status: RunStatus) -> BaseException | None:
        """Store the exchange; a cancellation arriving meanwhile (a shutdown) waits for it, so the
        partial answer is never lost and `end` is only sent once it is stored."""
        save = asyncio.ensure_future(self._store(text, status))
        while not save.done():
            try:
                await asyncio.shield(save)
            except asyncio.CancelledError:
                _absorb_cancellation()
            except Exception:
                break
        return save.exception()

    async def _store(self, text: str, status: RunStatus) -> None:
        if self._begin is not None:
            await asyncio.gather(self._begin, return_exceptions=True)  # the final write comes second
        await self.store.save_exchange(self._exchange(text, status))
