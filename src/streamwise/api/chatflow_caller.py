"""Another chatflow of this server, asked in this process: what chatflowTool calls.

The chatflow runs as any prediction does (its own run id, its exchange stored under its own
chatflow), but nobody streams it: the calling agent waits for its outcome. Chatflows that call each
other are bounded by a depth count that each run inherits from the run that asked it (a context
variable, copied into the task of every run started here).
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid

from streamwise.answerers import Answerers
from streamwise.engine.run import RunRequest
from streamwise.engine.runs import RunManager
from streamwise.engine.tools import ChatflowAnswer, ToolFailure
from streamwise.errors import NotFound, StreamwiseError

MAX_DEPTH = 3  # a chatflow asking a chatflow asking a chatflow; more is refused
_depth: contextvars.ContextVar[int] = contextvars.ContextVar("streamwise_chatflow_depth", default=0)


class InProcessChatflows:
    """`engine.tools.ChatflowCaller` over the process's chatflows and run manager (a server's, or a
    worker's: the other chatflow runs where the agent that asks it runs)."""

    def __init__(self, answerers: Answerers, runs: RunManager, max_history_turns: int | None) -> None:
        self.answerers = answerers
        self.runs = runs
        self.max_history_turns = max_history_turns

    async def ask(self, chatflow_id: str, question: str, *, chat_id: str | None) -> ChatflowAnswer:
        depth = _depth.get()
        if depth >= MAX_DEPTH:
            raise ToolFailure(f"chatflows may call each other at most {MAX_DEPTH} deep")
        try:
            answerer = await self.answerers.build(chatflow_id)
        except NotFound:
            raise ToolFailure(f"there is no chatflow {chatflow_id!r}") from None
        except StreamwiseError as exc:
            raise ToolFailure(f"chatflow {chatflow_id} cannot run: {exc.message}") from None
        chat = chat_id or str(uuid.uuid4())
        request = RunRequest(
            chatflow_id=chatflow_id,
            question=question,
            chat_id=chat,
            session_id=chat,
            max_history_turns=self.max_history_turns,
        )
        token = _depth.set(depth + 1)
        try:
            run = self.runs.start(request, answerer)  # its task copies the deeper count
        except StreamwiseError as exc:
            raise ToolFailure(exc.message) from None
        finally:
            _depth.reset(token)
        try:
            outcome = await run.wait()
        except asyncio.CancelledError:
            run.cancel("abort")  # the agent was stopped: stop the chatflow it asked too
            raise
        if outcome.status != "complete":
            raise ToolFailure(f"chatflow {chatflow_id} failed: {outcome.error or outcome.status}")
        return ChatflowAnswer(outcome.text, tuple(outcome.source_documents), tuple(outcome.used_tools))
