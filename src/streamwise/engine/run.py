"""One run: a question answered by an `Answerer`, emitting events to its own log.

Lifecycle, whatever happens: `start` before the first `token`; then exactly one of
metadata (success), `abort` (cancelled by a user or a departed client) or `error` (model failure or
server shutdown); the exchange is stored with its status (partial answers included); `end` comes
last, exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from streamwise.engine.eventlog import EventLog
from streamwise.engine.events import Abort, End, Error, Metadata, Start, Token
from streamwise.engine.pacing import Pacer
from streamwise.engine.ports import Answerer, ChatTurn, Exchange, MessageStore, RunStatus, SessionContext
from streamwise.engine.sink import EventSink

logger = logging.getLogger("streamwise.run")

CancelReason = Literal["abort", "disconnect", "shutdown"]
SHUTDOWN_MESSAGE = "server shutting down"
_MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class RunRequest:
    chatflow_id: str
    question: str
    chat_id: str
    session_id: str
    chat_type: str = "EXTERNAL"
    seed_history: tuple[ChatTurn, ...] = ()


@dataclass
class RunOutcome:
    status: RunStatus
    text: str
    error: str | None
    chat_message_id: str
    metadata: dict[str, Any] = field(default_factory=dict)


def public_message(exc: BaseException) -> str:
    """A message fit for a client: the exception's own words, bounded, never a traceback."""
    message = str(exc).strip() or type(exc).__name__
    return message if len(message) <= _MAX_ERROR_CHARS else message[: _MAX_ERROR_CHARS - 1] + "…"


def _absorb_cancellation() -> None:
    """The run handles its own cancellation: undo the request so later awaits are not cut short."""
    current = asyncio.current_task()
    if current is not None:
        current.uncancel()


class Run:
    def __init__(
        self, request: RunRequest, answerer: Answerer, store: MessageStore, pacer: Pacer | None = None
    ) -> None:
        self.id = str(uuid.uuid4())
        self.pacer = pacer or Pacer()
        self.request = request
        self.answerer = answerer
        self.store = store
        self.log = EventLog()
        self.user_message_id = str(uuid.uuid4())
        self.chat_message_id = str(uuid.uuid4())
        self.cancel_reason: CancelReason | None = None
        self.outcome: RunOutcome | None = None
        self._task: asyncio.Task[RunOutcome] | None = None

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
        self._task.cancel()
        return True

    async def wait(self) -> RunOutcome:
        return await asyncio.shield(self.start())

    async def _execute(self) -> RunOutcome:
        request = self.request
        log: EventSink = self.log
        session = SessionContext(
            chatflow_id=request.chatflow_id,
            chat_id=request.chat_id,
            session_id=request.session_id,
            history=self.store,
            seed_history=request.seed_history,
        )
        parts: list[str] = []
        status: RunStatus = "complete"
        error: str | None = None
        started = False
        budget = 1  # yield after the first token, so it goes out at once
        try:
            async for chunk in self.answerer.answer(request.question, session):
                if not started:
                    log.emit(Start(chunk))
                    started = True
                if chunk:
                    parts.append(chunk)
                    log.emit(Token(chunk))
                    budget -= 1
                    if not budget:
                        # Let the writer and the other runs go on (see engine/pacing.py).
                        await asyncio.sleep(0)
                        budget = self.pacer.burst()
        except asyncio.CancelledError:
            if self.cancel_reason is None:
                raise  # not ours: the event loop is going away
            _absorb_cancellation()
            if self.cancel_reason == "shutdown":
                status, error = "error", SHUTDOWN_MESSAGE
                log.emit(Error(SHUTDOWN_MESSAGE))
            else:
                status = "aborted"
                log.emit(Abort())
        except Exception as exc:
            status, error = "error", public_message(exc)
            logger.warning("run %s failed: %s", self.id, error, exc_info=logger.isEnabledFor(logging.DEBUG))
            log.emit(Error(error))

        text = "".join(parts)
        memory = self.answerer.memory
        memory_type = memory.memory_type if memory is not None else None
        metadata: dict[str, Any] = {
            "chatId": request.chat_id,
            "chatMessageId": self.chat_message_id,
            "question": request.question,
        }
        if memory_type:
            metadata["sessionId"] = request.session_id
            metadata["memoryType"] = memory_type
        save_error = await self._store_despite_cancellation(text, status, memory_type)
        if save_error is not None:
            logger.error("run %s: storing the exchange failed: %r", self.id, save_error)
            if status == "complete":
                status, error = "error", f"answer could not be stored: {public_message(save_error)}"
                log.emit(Error(error))
        if status == "complete":
            log.emit(Metadata(metadata))
        self.outcome = RunOutcome(status, text, error, self.chat_message_id, metadata)
        log.emit(End())
        return self.outcome

    async def _store_despite_cancellation(
        self, text: str, status: RunStatus, memory_type: str | None
    ) -> BaseException | None:
        """Store the exchange; a cancellation arriving meanwhile (a shutdown) waits for it, so the
        partial answer is never lost and `end` is only sent once it is stored."""
        save = asyncio.ensure_future(self._store(text, status, memory_type))
        while not save.done():
            try:
                await asyncio.shield(save)
            except asyncio.CancelledError:
                _absorb_cancellation()
            except Exception:
                break
        return save.exception()

    async def _store(self, text: str, status: RunStatus, memory_type: str | None) -> None:
        request = self.request
        await self.store.save_exchange(
            Exchange(
                run_id=self.id,
                chatflow_id=request.chatflow_id,
                chat_id=request.chat_id,
                session_id=request.session_id,
                question=request.question,
                answer=text,
                status=status,
                user_message_id=self.user_message_id,
                api_message_id=self.chat_message_id,
                chat_type=request.chat_type,
                memory_type=memory_type,
            )
        )
