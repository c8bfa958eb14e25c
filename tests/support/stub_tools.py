"""Tool calling for the OpenAI/Ollama stub (tests/support/openai_stub.py): scripted tool-call rounds.

A request that offers `tools` and whose model controls hold `calls` gets, round after round, the calls
scripted for that round; once the script is used up it gets a text answer. `calls` is JSON: a list of
rounds, each a list of `[tool name, arguments as JSON text]`, e.g.

    calls=[[["calculator", "{\\"input\\": \\"2+2\\"}"]]]                  one call, then the answer
    calls=[[["a", "{}"], ["b", "{}"]]]                                     two calls in one round
    calls=[[["a", "{}"]], [["b", "{}"]]]                                   a chain across two rounds

The round is the number of assistant turns with tool calls since the last user message, so every
request is answered from the conversation alone and concurrent agents never mix. Other controls:

    split=N     OpenAI: send each call's arguments in pieces of N characters (default 4), the name
                and id in the first delta of the call, as OpenAI does
    answer=tools  the text answer is the tool results of the last round, "; "-joined, one word a token
    preamble=1  OpenAI: send the text "Let me check. " before the calls of a round

Arguments that are not a JSON object still go out as text (OpenAI) or as a string (Ollama), which
is how a model's malformed call looks.
"""

from __future__ import annotations

import json
import time
from typing import Any

_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

Call = tuple[str, str]  # (name, arguments JSON text)


def rounds_of(text: str) -> list[list[Call]]:
    rounds = json.loads(text)
    return [[(str(name), str(arguments)) for name, arguments in round_] for round_ in rounds]


def current_round(messages: object) -> int:
    """How many tool-calling assistant turns follow the last user message."""
    if not isinstance(messages, list):
        return 0
    count = 0
    for message in reversed(messages):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "user":
            break
        if message.get("role") == "assistant" and message.get("tool_calls"):
            count += 1
    return count


def tool_results(messages: object) -> list[str]:
    """The contents of the tool turns at the end of the conversation, in order."""
    results: list[str] = []
    if not isinstance(messages, list):
        return results
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "tool":
            break
        results.append(str(message.get("content", "")))
    return list(reversed(results))


def calls_due(body: dict[str, Any], script: str | None) -> list[Call] | None:
    """The calls this request must answer with, or None for a text answer."""
    if not script or not body.get("tools"):
        return None
    rounds = rounds_of(script)
    index = current_round(body.get("messages"))
    return rounds[index] if index < len(rounds) else None


def answer_words(body: dict[str, Any]) -> list[str]:
    """answer=tools: the last round's results, one word (with its space) a token."""
    text = "; ".join(tool_results(body.get("messages")))
    words = text.split(" ")
    return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)] or [""]


def _call_id(round_index: int, position: int) -> str:
    return f"call_r{round_index}_{position}"


def openai_stream(model: str, body: dict[str, Any], calls: list[Call], split: int, preamble: bool) -> bytes:
    """A streamed chat completion whose deltas carry `calls`, then finish_reason "tool_calls"."""
    round_index = current_round(body.get("messages"))
    common = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        event = {
            **common,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return b"data: " + _json(event).encode() + b"\n\n"

    out = [chunk({"role": "assistant", "content": None})]
    if preamble:
        out.append(chunk({"content": "Let me check. "}))
    for position, (name, arguments) in enumerate(calls):
        head = {"index": position, "id": _call_id(round_index, position), "type": "function"}
        out.append(chunk({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]}))
        step = max(1, split)
        for at in range(0, len(arguments), step):
            piece = arguments[at : at + step]
            out.append(chunk({"tool_calls": [{"index": position, "function": {"arguments": piece}}]}))
    out.append(chunk({}, "tool_calls"))
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def openai_answer(model: str, body: dict[str, Any], calls: list[Call]) -> dict[str, Any]:
    round_index = current_round(body.get("messages"))
    tool_calls = [
        {
            "id": _call_id(round_index, i),
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        for i, (name, arguments) in enumerate(calls)
    ]
    message = {"role": "assistant", "content": None, "tool_calls": tool_calls}
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}],
    }


def _ollama_arguments(arguments: str) -> object:
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments
    return parsed if isinstance(parsed, dict) else arguments


def ollama_message(calls: list[Call]) -> dict[str, Any]:
    tool_calls = [
        {"function": {"index": i, "name": name, "arguments": _ollama_arguments(arguments)}}
        for i, (name, arguments) in enumerate(calls)
    ]
    return {"role": "assistant", "content": "", "tool_calls": tool_calls}


def ollama_stream(model: str, calls: list[Call]) -> bytes:
    """Ollama sends a round's calls whole, in one chunk, then the final chunk."""
    stamp = "2026-01-01T00:00:00Z"
    first = {"model": model, "created_at": stamp, "message": ollama_message(calls), "done": False}
    last = {
        "model": model,
        "created_at": stamp,
        "message": {"role": "assistant", "content": ""},
        "done_reason": "stop",
        "done": True,
    }
    return _json(first).encode() + b"\n" + _json(last).encode() + b"\n"


def ollama_answer(model: str, calls: list[Call]) -> dict[str, Any]:
    return {
        "model": model,
        "created_at": "2026-01-01T00:00:00Z",
        "message": ollama_message(calls),
        "done_reason": "stop",
        "done": True,
    }


def text_stream_openai(model: str, words: list[str]) -> bytes:
    common = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    out = []
    for i, word in enumerate(words):
        delta: dict[str, Any] = {"content": word} if i else {"role": "assistant", "content": word}
        event = {**common, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}
        out.append(b"data: " + _json(event).encode() + b"\n\n")
    stop = {**common, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}
    out.append(b"data: " + _json(stop).encode() + b"\n\ndata: [DONE]\n\n")
    return b"".join(out)


def text_stream_ollama(model: str, words: list[str]) -> bytes:
    stamp = "2026-01-01T00:00:00Z"
    out = [
        _json(
            {
                "model": model,
                "created_at": stamp,
                "message": {"role": "assistant", "content": w},
                "done": False,
            }
        ).encode()
        + b"\n"
        for w in words
    ]
    done = {
        "model": model,
        "created_at": stamp,
        "message": {"role": "assistant", "content": ""},
        "done": True,
    }
    out.append(_json(done).encode() + b"\n")
    return b"".join(out)
