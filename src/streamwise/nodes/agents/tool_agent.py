"""Flowise "toolAgent" (Tool Agent): a chat model that calls tools until it can answer.

Each iteration is one model round with the tools offered. A round that ends with tool calls gets them
run (the calls of one round concurrently), their results appended as `tool` turns, and another round;
a round without calls is the answer. Only text the model writes reaches the stream as tokens: never a
call, never a tool's output. The parts the run turns into events, in Flowise's Tool Agent order:
- `ToolsCalled` as a round's calls start (`calledTools`, with `toolOutput` empty);
- `ToolUsed` as each call finishes, in call order (the run sends them as one `usedTools` at the end,
  after `sourceDocuments`, and stores them with the answer, also when the answer is aborted);
- `Sources` for the passages a retriever tool found.

Bounds: `maxIterations` model rounds (Flowise's default, 10; then the answer is LangChain's "Agent
stopped due to max iterations."), a deadline per tool call (STREAMWISE_TOOL_TIMEOUT_SECONDS), and one
for the whole answer (STREAMWISE_AGENT_DEADLINE_SECONDS), checked before every round and every call
and as the model's text streams. A tool that fails or runs out of time goes back to the model as an
error result and is reported in `usedTools[].error`; the run goes on. Cancelling the run (abort,
disconnect) cancels the running calls and the model round.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from streamwise.engine.ports import (
    ChatModel,
    ChatTurn,
    Memory,
    Part,
    SessionContext,
    Sources,
    ToolsCalled,
    ToolUsed,
)
from streamwise.engine.tools import (
    AgentTurn,
    Tool,
    ToolCall,
    ToolCallingModel,
    ToolCalls,
    ToolContext,
    ToolFailure,
    ToolResult,
    ToolSource,
)
from streamwise.errors import ModelTimeout, ModelUnavailable, NodeConfigError
from streamwise.nodes import inputs as read
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

logger = logging.getLogger("streamwise.agent")

DEFAULT_SYSTEM_MESSAGE = "You are a helpful AI assistant."  # Flowise's
DEFAULT_MAX_ITERATIONS = 10
MAX_ITERATIONS_LIMIT = 100
STOPPED = "Agent stopped due to max iterations."  # LangChain's answer, which Flowise returns
MAX_OUTPUT_CHARS = 100_000  # of one tool result, as the model gets it
# Tool calls one question may cause, counted across the chatflows it asks through chatflowTool: the
# runs those start inherit this budget (a context variable), so a model that fans out cannot
# multiply its calls level by level.
MAX_TOOL_CALLS = 200


@dataclass
class _Budget:
    left: int


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "streamwise_tool_budget", default=None
)


@dataclass(frozen=True)
class ToolAgent:
    node_id: str
    model: ToolCallingModel
    memory: Memory | None
    tools: tuple[Tool | ToolSource, ...]
    system_message: str
    max_iterations: int
    tool_timeout: float
    deadline: float

    @property
    def can_stream(self) -> bool:
        return isinstance(self.model, ChatModel) and self.model.can_stream

    async def answer(self, question: str, session: SessionContext) -> AsyncGenerator[Part, None]:
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.deadline
        if _budget.get() is None:  # the question a user asked (not one another chatflow's agent asked)
            _budget.set(_Budget(MAX_TOOL_CALLS))
        history = await self.memory.load(session) if self.memory else list(session.seed_history)
        tools = await self._tools(ends)
        schemas = [tool.schema for tool in tools.values()]
        system = [AgentTurn("system", self.system_message)] if self.system_message else []
        turns = [*system, *(AgentTurn.of(turn) for turn in history), AgentTurn.of(ChatTurn("user", question))]
        context = ToolContext(session=session, question=question)
        for _ in range(self.max_iterations):
            self._check(ends)
            said: list[str] = []
            calls: tuple[ToolCall, ...] = ()
            async with aclosing(self.model.stream_with_tools(turns, schemas)) as pieces:
                async for piece in pieces:
                    if isinstance(piece, ToolCalls):
                        calls = piece.calls
                        continue
                    said.extend(piece)
                    yield piece
                    self._check(ends)
            if not calls:
                return
            turns.append(AgentTurn("assistant", "".join(said), tool_calls=calls))
            yield ToolsCalled(
                tuple({"tool": c.name, "toolInput": _input(c), "toolOutput": ""} for c in calls)
            )
            running = [asyncio.ensure_future(self._call(call, tools, context, ends)) for call in calls]
            try:
                await asyncio.wait(running)
            finally:
                for task in running:  # cancelled (abort, disconnect): stop every call still running
                    task.cancel()
            for call, task in zip(calls, running, strict=True):
                record, result = task.result()
                if record.get("sourceDocuments"):
                    yield Sources(tuple(record["sourceDocuments"]))
                yield ToolUsed(record)
                turns.append(AgentTurn("tool", result, tool_call_id=call.id, name=call.name))
        yield [STOPPED]

    def _check(self, ends: float) -> None:
        if asyncio.get_running_loop().time() > ends:
            raise ModelTimeout(
                f"Node {self.node_id} (Tool Agent): the answer took longer than {self.deadline:g} s",
                detail=f"agent deadline of {self.deadline:g} s reached",
            )

    async def _tools(self, ends: float) -> dict[str, Tool]:
        """Every tool by name: the node's own, and those its tool sources (MCP servers) offer now."""
        found: dict[str, Tool] = {}
        for item in self.tools:
            offered: Sequence[Tool]
            if isinstance(item, ToolSource):
                try:
                    async with asyncio.timeout(max(0.0, min(self.tool_timeout, ends - _now()))):
                        offered = await item.tools()
                except TimeoutError:
                    raise ModelTimeout(
                        f"Node {self.node_id} (Tool Agent): a tool server did not list its tools within "
                        f"{self.tool_timeout:g} s"
                    ) from None
                except ToolFailure as exc:
                    raise ModelUnavailable(
                        f"Node {self.node_id} (Tool Agent): {exc.message}", detail=exc.detail
                    ) from None
            else:
                offered = (item,)
            for tool in offered:
                name = tool.schema.name
                if name in found:
                    logger.warning("agent %s: two tools are named %r; the first is kept", self.node_id, name)
                    continue
                found[name] = tool
        return found

    async def _call(
        self, call: ToolCall, tools: Mapping[str, Tool], context: ToolContext, ends: float
    ) -> tuple[dict[str, Any], str]:
        """Run one call: (its usedTools record, the text the model gets back). Never raises, but
        for cancellation."""
        arguments = _arguments(call)
        record: dict[str, Any] = {"tool": call.name, "toolInput": _input(call), "toolOutput": ""}
        tool = tools.get(call.name)
        budget = _budget.get()
        try:
            if budget is not None:
                if budget.left <= 0:
                    raise ToolFailure(f"this question has made {MAX_TOOL_CALLS} tool calls, the most it may")
                budget.left -= 1
            if tool is None:
                names = ", ".join(sorted(tools)) or "none"
                raise ToolFailure(f"there is no tool named {call.name!r}; the tools are: {names}")
            if arguments is None:
                raise ToolFailure("the arguments are not a JSON object")
            limit = min(self.tool_timeout, ends - _now())
            if limit <= 0:
                raise ToolFailure("the answer's time is up")
            try:
                async with asyncio.timeout(limit):
                    result = await tool.call(arguments, context)
            except TimeoutError:
                raise ToolFailure(f"the tool did not finish within {limit:g} s") from None
            if not isinstance(result, ToolResult):
                raise TypeError(f"tool {call.name} returned {type(result).__name__}, not a ToolResult")
        except ToolFailure as exc:
            if exc.detail:
                logger.info(
                    "agent %s: tool %s failed: %s (%s)", self.node_id, call.name, exc.message, exc.detail
                )
            record["toolOutput"] = record["error"] = exc.message
            return record, f"Error: {exc.message}"
        except Exception as exc:
            logger.error("agent %s: tool %s failed unexpectedly", self.node_id, call.name, exc_info=exc)
            message = "the tool failed unexpectedly"
            record["toolOutput"] = record["error"] = message
            return record, f"Error: {message}"
        output = result.output
        if len(output) > MAX_OUTPUT_CHARS:
            output = (
                output[:MAX_OUTPUT_CHARS]
                + f"\n[cut: the tool's output was {len(result.output):,} characters]"
            )
        record["toolOutput"] = output
        if result.sources:
            record["sourceDocuments"] = list(result.sources)
        return record, output


def _now() -> float:
    return asyncio.get_running_loop().time()


def _arguments(call: ToolCall) -> dict[str, Any] | None:
    if not call.arguments.strip():
        return {}
    try:
        parsed = json.loads(call.arguments)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _input(call: ToolCall) -> dict[str, Any]:
    """`toolInput` as Flowise reports it: the arguments object; text that is not one, as `input`."""
    parsed = _arguments(call)
    return parsed if parsed is not None else {"input": call.arguments}


def _tool_inputs(node_id: str, raw: object) -> tuple[Tool | ToolSource, ...]:
    items = raw if isinstance(raw, list) else [raw] if raw not in (None, "") else []
    tools: list[Tool | ToolSource] = []
    names: set[str] = set()
    for item in items:
        if isinstance(item, list):  # a node that gives several tools as a list
            tools.extend(_tool_inputs(node_id, item))
            continue
        if isinstance(item, ToolSource):
            tools.append(item)
            continue
        if not isinstance(item, Tool):
            raise NodeConfigError(
                f"Node {node_id}: input 'tools' must be tool nodes, got {type(item).__name__}", node_id
            )
        name = item.schema.name
        if name in names:
            raise NodeConfigError(f"Node {node_id}: two connected tools are named {name!r}", node_id)
        names.add(name)
        tools.append(item)
    return tuple(tools)


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> ToolAgent:
    model = read.instance(inputs, "model", node_id, ChatModel, required=True)
    if not isinstance(model, ToolCallingModel):
        raise NodeConfigError(
            f"Node {node_id}: input 'model' must be a chat model that can call tools "
            f"(ChatOpenAI or ChatOllama), got {type(model).__name__}",
            node_id,
        )
    iterations = read.integer(inputs, "maxIterations", node_id, DEFAULT_MAX_ITERATIONS)
    if iterations is None or not 1 <= iterations <= MAX_ITERATIONS_LIMIT:
        raise NodeConfigError(
            f"Node {node_id}: input 'maxIterations' must be between 1 and {MAX_ITERATIONS_LIMIT}", node_id
        )
    return ToolAgent(
        node_id=node_id,
        model=model,
        memory=read.instance(inputs, "memory", node_id, Memory, required=False),
        tools=_tool_inputs(node_id, inputs.get("tools")),
        system_message=read.text(inputs, "systemMessage", DEFAULT_SYSTEM_MESSAGE) or "",
        max_iterations=iterations,
        tool_timeout=services.tools.timeout_seconds,
        deadline=services.agent_deadline_seconds,
    )


SPEC = NodeSpec(
    name="toolAgent",
    label="Tool Agent",
    category="Agents",
    answers=True,
    build=build,
    honoured=("model", "memory", "tools", "systemMessage", "maxIterations"),
    ignored=("inputModeration", "chatPromptTemplate", "enableDetailedStreaming"),
)
