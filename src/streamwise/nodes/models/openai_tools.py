"""chatOpenAI's tool calling: one model round with `tools`, its streamed `tool_calls` deltas assembled.

OpenAI streams a call in pieces: the first delta of a call carries its `index`, `id` and function
name, the following ones pieces of its `arguments` text under the same `index`; several calls of one
round (parallel calls) each have their own index. The round ends with `finish_reason: "tool_calls"`
and `[DONE]`. Text deltas go on as they come, so a final answer streams as fast as a plain one.

Plain answers never come here (`ChatOpenAI.stream` keeps its fast raw path); in a tools round a
block is decoded in full only when it holds `"tool_calls"`, so the text of the final round costs what
it costs on the plain path.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from streamwise.engine.ports import TextChunks
from streamwise.engine.tools import AgentTurn, ToolCall, ToolCalls, ToolSchema
from streamwise.nodes.models.chat_openai import BODY_ERRORS, ChatOpenAI, StreamDone
from streamwise.nodes.models.deadline import each_within
from streamwise.nodes.models.errors import ModelError
from streamwise.nodes.models.sse_lines import SSEBlockSplitter, data_field

_decode = json.JSONDecoder().decode
_TOOL_CALLS_KEY = '"tool_calls"'
MAX_CALLS = 64  # calls one round may ask for; more is a malformed answer
MAX_ARGUMENTS_CHARS = 1_000_000  # arguments text of one call


@dataclass(slots=True)
class _Building:
    """A call being assembled from deltas."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    size: int = 0


def tool_definition(schema: ToolSchema) -> dict[str, Any]:
    function = {"name": schema.name, "description": schema.description, "parameters": dict(schema.parameters)}
    return {"type": "function", "function": function}


def wire_messages(turns: Sequence[AgentTurn]) -> list[dict[str, Any]]:
    """Turns in OpenAI's shape: an assistant turn keeps its `tool_calls`, a tool turn names the call
    it answers (`tool_call_id`)."""
    messages: list[dict[str, Any]] = []
    for turn in turns:
        if turn.role == "tool":
            messages.append(
                {"role": "tool", "tool_call_id": turn.tool_call_id or "", "content": turn.content}
            )
        elif turn.tool_calls:
            calls = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in turn.tool_calls
            ]
            messages.append({"role": "assistant", "content": turn.content or None, "tool_calls": calls})
        else:
            messages.append({"role": turn.role, "content": turn.content})
    return messages


async def round_with_tools(
    node: ChatOpenAI, messages: Sequence[AgentTurn], tools: Sequence[ToolSchema]
) -> AsyncGenerator[TextChunks | ToolCalls, None]:
    body: dict[str, Any] = {
        "model": node.model,
        "messages": wire_messages(messages),
        "stream": node.streaming,
        **node.params,
    }
    if tools:
        body["tools"] = [tool_definition(schema) for schema in tools]
    if not node.streaming:
        async for part in _complete(node, body):
            yield part
        return
    building: dict[int, _Building] = {}
    async for texts in _stream(node, body, building):
        yield texts
    if building:
        yield ToolCalls(tuple(_finished(building[index], index) for index in sorted(building)))


def _finished(call: _Building, index: int) -> ToolCall:
    return ToolCall(call.id or f"call_{index}", call.name, "".join(call.arguments))


async def _stream(
    node: ChatOpenAI, body: dict[str, Any], building: dict[int, _Building]
) -> AsyncGenerator[TextChunks, None]:
    failures = node.failures
    splitter = SSEBlockSplitter()
    done = False
    first = True  # the first delta goes on as it came, an empty one too (see ChatOpenAI._stream)
    try:
        response = await node._open((), stream=True, body=body)
        try:
            reads = each_within(
                response.aiter_bytes(), node.deadline, lambda: failures.silence_timeout(node.deadline)
            )
            async for chunk in reads:
                if done:
                    continue  # read to the end so the connection goes back to the pool
                texts: TextChunks = []
                for block in splitter.feed(chunk):
                    try:
                        if _TOOL_CALLS_KEY in block:
                            content = _tool_block(node, block, building)
                        else:
                            content = node._content(block)
                    except StreamDone:
                        done = True
                        break
                    except ModelError:
                        if texts:
                            yield texts
                        raise
                    if content:
                        texts.append(content)
                        first = False
                    elif first and content is not None:
                        texts.append("")
                        first = False
                if texts:
                    yield texts
        finally:
            await response.aclose()
    except openai.OpenAIError as exc:
        raise node._error(exc) from None
    except BODY_ERRORS as exc:
        raise node._body_error(exc) from None


def _tool_block(node: ChatOpenAI, block: str, building: dict[int, _Building]) -> str | None:
    """A block that carries tool-call deltas (and maybe text): decoded whole."""
    text = data_field(block)
    if text is None:
        return None
    try:
        event = _decode(text)
        delta = event["choices"][0]["delta"]
        for item in delta.get("tool_calls") or ():
            _absorb(building, item)
        content = delta.get("content")
    except (ValueError, LookupError, TypeError, AttributeError):
        raise node.failures.malformed(f"a tool-call event that is not one: {text[:200]}") from None
    return content if isinstance(content, str) else None


def _absorb(building: dict[int, _Building], item: dict[str, Any]) -> None:
    index = item.get("index", len(building))
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise TypeError("a tool call's index is not a number")
    call = building.get(index)
    if call is None:
        if len(building) >= MAX_CALLS:
            raise TypeError("too many tool calls in one answer")
        call = building[index] = _Building()
    if item.get("id"):
        call.id = str(item["id"])
    function = item.get("function") or {}
    if function.get("name"):
        call.name += str(function["name"])  # some servers split the name too
    piece = function.get("arguments")
    if piece:
        piece = str(piece)
        call.size += len(piece)
        if call.size > MAX_ARGUMENTS_CHARS:
            raise TypeError("a tool call's arguments are too long")
        call.arguments.append(piece)


async def _complete(node: ChatOpenAI, body: dict[str, Any]) -> AsyncGenerator[TextChunks | ToolCalls, None]:
    """A round without streaming: the whole message, its text and its calls."""
    message = await node.completion_message((), body=body)
    content = message.get("content")
    if content:
        yield [content]
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list) or len(raw_calls) > MAX_CALLS:
        raise node.failures.malformed("a chat completion whose tool_calls is not a list of calls")
    calls: list[ToolCall] = []
    for index, item in enumerate(raw_calls):
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict):
            raise node.failures.malformed("a chat completion with a tool call that has no function")
        arguments = function.get("arguments", "")
        calls.append(
            ToolCall(
                str(item.get("id") or f"call_{index}"),
                str(function.get("name", "")),
                arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False),
            )
        )
    if calls:
        yield ToolCalls(tuple(calls))
