"""chatOllama: an Ollama server's native chat API (POST /api/chat, NDJSON when streaming)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import httpx

from streamwise.engine.ports import ChatTurn, TextChunks
from streamwise.engine.tools import AgentTurn, ToolCall, ToolCalls, ToolSchema
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs
from streamwise.nodes.model_hosts import check_model_host
from streamwise.nodes.models.errors import ModelError, ModelFailures, tidy
from streamwise.nodes.models.sse_lines import LineSplitter
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

DEFAULT_BASE_URL = "http://localhost:11434"

# Flowise input → Ollama option, for numbers passed through unchanged.
_INT_OPTIONS = {
    "topK": "top_k",
    "numCtx": "num_ctx",
    "numPredict": "num_predict",
    "mirostat": "mirostat",
    "numGpu": "num_gpu",
    "numThread": "num_thread",
    "repeatLastN": "repeat_last_n",
}
_FLOAT_OPTIONS = {
    "topP": "top_p",
    "repeatPenalty": "repeat_penalty",
    "mirostatEta": "mirostat_eta",
    "mirostatTau": "mirostat_tau",
    "tfsZ": "tfs_z",
}


# A str skips json.loads' encoding sniffing: ~0.8 µs of ~3 µs per event.
_decode = json.JSONDecoder().decode


class ChatOllama:
    """One configured chatOllama node; each `stream` call is one /api/chat request.

    Building one touches nothing; the shared HTTP client is taken at the first request. httpx's read
    timeout is exactly "the first byte, then each silence between chunks", so it carries the deadline.
    """

    def __init__(
        self,
        services: NodeServices,
        *,
        base_url: str,
        body: Mapping[str, Any],
        deadline: float = 120.0,
        node_id: str = "chatOllama",
    ) -> None:
        self.services = services
        self.base_url = base_url.rstrip("/")
        self.body = dict(body)  # everything but the messages
        self.deadline = deadline
        self._url = self.base_url + "/api/chat"
        self._timeout = httpx.Timeout(connect=10.0, read=deadline, write=30.0, pool=30.0)
        self.failures = ModelFailures(node_id, "ChatOllama", f"Ollama server at {self.base_url}")

    @property
    def http(self) -> httpx.AsyncClient:
        return shared_http(self.services)

    @property
    def can_stream(self) -> bool:
        return bool(self.body.get("stream", True))

    def stream(self, messages: Sequence[ChatTurn]) -> AsyncGenerator[TextChunks, None]:
        body = {**self.body, "messages": [{"role": turn.role, "content": turn.content} for turn in messages]}
        return self._chat(body, None)

    async def stream_with_tools(
        self, messages: Sequence[AgentTurn], tools: Sequence[ToolSchema]
    ) -> AsyncGenerator[TextChunks | ToolCalls, None]:
        """One round of Ollama's tool calling: text as it streams, then the calls the model made
        (Ollama sends each call whole, its arguments an object)."""
        body = {**self.body, "messages": _agent_messages(messages), "tools": [_tool(t) for t in tools]}
        calls: list[ToolCall] = []
        async for texts in self._chat(body, calls):
            yield texts
        if calls:
            yield ToolCalls(tuple(calls))

    async def _chat(
        self, body: dict[str, Any], calls: list[ToolCall] | None
    ) -> AsyncGenerator[TextChunks, None]:
        failures = self.failures
        splitter = LineSplitter()
        done = False
        started = False
        try:
            # Leaving this block for any reason (end, error, cancellation, aclose) closes the response,
            # so Ollama sees the disconnect and stops generating.
            async with self.http.stream("POST", self._url, json=body, timeout=self._timeout) as response:
                started = True
                if response.status_code >= 400:
                    await response.aread()
                    raise failures.status(
                        response.status_code,
                        _error_text(response.content),
                        response.headers.get("retry-after"),
                    )
                async for chunk in response.aiter_bytes():
                    if done:
                        continue  # read to the end so the connection goes back to the pool
                    texts: TextChunks = []
                    for line in splitter.feed(chunk):
                        try:
                            content, done = self._parse(line, calls)
                        except ModelError:
                            if texts:
                                yield texts  # what came before the failure, in the same read
                            raise
                        if content:
                            texts.append(content)
                        if done:
                            break
                    if texts:
                        yield texts
                tail = splitter.pending().strip()
                if tail and not done:  # a final line without its newline
                    content, done = self._parse(tail, calls)
                    if content:
                        yield [content]
                if not done:
                    # Ollama always ends with a "done" line: without it the answer was cut short.
                    raise failures.broke_off("the answer ended before its done line")
        except httpx.TimeoutException:
            if started:
                raise failures.silence_timeout(self.deadline) from None
            raise failures.first_byte_timeout(self.deadline) from None
        except httpx.ConnectError as exc:
            raise failures.unreachable(tidy(str(exc)) or "connection failed") from None
        except httpx.RequestError as exc:
            raise failures.broke_off(tidy(str(exc)) or type(exc).__name__) from None

    def _parse(self, line: bytes, calls: list[ToolCall] | None) -> tuple[str | None, bool]:
        try:
            event = _decode(line.decode())
            message = event.get("message")
            content = message.get("content") if message else None
            finished = bool(event.get("done"))
            if calls is not None and message and message.get("tool_calls"):
                calls.extend(_calls(message["tool_calls"], len(calls)))
        except (ValueError, AttributeError, TypeError):
            raise self.failures.malformed(f"a line that is not JSON: {line[:200]!r}") from None
        if "error" in event:
            raise self.failures.failed_mid_answer(_error_text(event))
        return content, finished


def _tool(schema: ToolSchema) -> dict[str, Any]:
    function = {"name": schema.name, "description": schema.description, "parameters": dict(schema.parameters)}
    return {"type": "function", "function": function}


def _calls(raw: object, first: int) -> list[ToolCall]:
    """Ollama's tool calls (`[{"function": {"name", "arguments": {...}}}]`, an `id` in newer releases)."""
    if not isinstance(raw, list):
        raise TypeError("tool_calls is not a list")
    calls: list[ToolCall] = []
    for position, item in enumerate(raw, start=first):
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict):
            raise TypeError("a tool call without its function")
        arguments = function.get("arguments", {})
        text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        call_id = item.get("id") if isinstance(item.get("id"), str) and item.get("id") else f"call_{position}"
        calls.append(ToolCall(call_id, str(function.get("name", "")), text))
    return calls


def _agent_messages(turns: Sequence[AgentTurn]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for turn in turns:
        message: dict[str, Any] = {"role": turn.role, "content": turn.content}
        if turn.tool_calls:
            message["tool_calls"] = [
                {"function": {"name": call.name, "arguments": _arguments_object(call.arguments)}}
                for call in turn.tool_calls
            ]
        if turn.role == "tool" and turn.name:
            message["tool_name"] = turn.name
        messages.append(message)
    return messages


def _arguments_object(text: str) -> object:
    """Ollama wants the arguments back as the object they were; text that was not JSON stays text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _error_text(body: bytes | dict[str, Any]) -> str:
    if isinstance(body, bytes):
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            return tidy(body.decode("utf-8", "replace")) or "no details"
    else:
        parsed = body
    error = parsed.get("error") if isinstance(parsed, dict) else parsed
    return tidy(error if isinstance(error, str) else json.dumps(error)) or "no details"


def shared_http(services: NodeServices) -> httpx.AsyncClient:
    """One connection pool for every Ollama node: clients are costly to build and hold sockets."""
    client = services.cache.get("chatOllama.http")
    if not isinstance(client, httpx.AsyncClient):
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=200))
        services.cache["chatOllama.http"] = client
    return client


def build(node_id: str, inputs_: Mapping[str, Any], services: NodeServices) -> ChatOllama:
    model = inputs.text(inputs_, "modelName")
    if not model:
        raise NodeConfigError(f"Node {node_id}: ChatOllama needs a model name", node_id)
    options: dict[str, Any] = {"temperature": inputs.number(inputs_, "temperature", node_id, 0.9)}
    for flowise_name, option in _INT_OPTIONS.items():
        options[option] = inputs.integer(inputs_, flowise_name, node_id)
    for flowise_name, option in _FLOAT_OPTIONS.items():
        options[option] = inputs.number(inputs_, flowise_name, node_id)
    stop = inputs.text(inputs_, "stop")
    if stop:
        options["stop"] = [word.strip() for word in stop.split(",") if word.strip()]
    body: dict[str, Any] = {
        "model": model,
        "stream": inputs.flag(inputs_, "streaming", True),
        "options": {name: value for name, value in options.items() if value is not None},
    }
    keep_alive = inputs.text(inputs_, "keepAlive")
    if keep_alive:
        body["keep_alive"] = keep_alive
    if inputs.flag(inputs_, "jsonMode", False):
        body["format"] = "json"
    if inputs_.get("think") not in (None, ""):
        body["think"] = inputs.flag(inputs_, "think", False)
    base_url = inputs.text(inputs_, "baseUrl", DEFAULT_BASE_URL) or DEFAULT_BASE_URL
    check_model_host(node_id, "ChatOllama", base_url, services.model_allowed_hosts)
    return ChatOllama(
        services, base_url=base_url, body=body, deadline=services.model_timeout_seconds, node_id=node_id
    )


SPEC = NodeSpec(
    name="chatOllama",
    label="ChatOllama",
    category="Chat Models",
    build=build,
    honoured=(
        "baseUrl",
        "modelName",
        "temperature",
        "streaming",
        "stop",
        "keepAlive",
        "jsonMode",
        "think",
        *_INT_OPTIONS,
        *_FLOAT_OPTIONS,
    ),
    ignored=("credential", "cache", "allowImageUploads"),
)
