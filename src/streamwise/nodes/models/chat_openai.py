"""chatOpenAI: any OpenAI-compatible chat completions server (OpenAI, vLLM, llama.cpp, LM Studio, ...).

The `openai` SDK builds the request, authenticates and reports HTTP errors; the streamed body is parsed
here from raw bytes: the SDK's typed stream costs about 100 µs per chunk, many times this parser.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import httpx2
import openai
from openai import AsyncOpenAI

from streamwise.engine.ports import ChatTurn, TextChunks
from streamwise.engine.tools import AgentTurn, ToolCalls, ToolSchema
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs
from streamwise.nodes.model_hosts import check_model_host
from streamwise.nodes.models.deadline import each_within
from streamwise.nodes.models.errors import ModelError, ModelFailures, tidy
from streamwise.nodes.models.sse_lines import SSEBlockSplitter, data_field
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

OFFICIAL_BASE_URL = "https://api.openai.com/v1"
_COMPLETIONS = "/chat/completions"
# The transport's default (100 connections) silently queued streams 101+ behind the others. Idle
# connections are let go after 4 s, before a server's usual 5 s keep-alive closes them under us: the
# aiohttp transport reports a reused connection that the server closed as a connect timeout.
UPSTREAM_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=4.0)
NO_KEY = "sk-no-key-required"  # local OpenAI-compatible servers accept any key; the SDK insists on one
# The field of Flowise's `openAIApi` credential, which the server sets as an input of the node.
KEY_INPUT = "openAIApiKey"

# Failures of the body read, which the SDK does not wrap (it only wraps the request itself).
BODY_ERRORS = (httpx2.RequestError, ssl.SSLError, anyio.EndOfStream)


# A str skips json.loads' encoding sniffing: ~0.8 µs of ~3 µs per event.
_decode = json.JSONDecoder().decode
# The C scanner: decodes one JSON string from an offset. Typeshed does not declare it.
_scanstring: Callable[[str, int], tuple[str, int]] = getattr(json.decoder, "scanstring")  # noqa: B009
_CONTENT_KEY = '"content":"'
_CONTENT_LEN = len(_CONTENT_KEY)
_DELTA_KEY = '"delta":{'


class StreamDone(Exception):
    """The stream's `[DONE]`: control flow, not a failure."""


@dataclass(frozen=True)
class ClientConfig:
    """What picks a shared client: one per configuration (see `shared_client`)."""

    base_url: str
    api_key: str = field(repr=False)  # never in a log line that shows a config
    timeout: float | None
    headers: tuple[tuple[str, str], ...]


class ChatOpenAI:
    """One configured chatOpenAI node; each `stream` call is one request.

    Building one touches nothing (so a chatflow can be checked at save time); the shared client is
    taken when the first request is made.
    """

    def __init__(
        self,
        services: NodeServices,
        config: ClientConfig,
        *,
        model: str,
        params: Mapping[str, Any],
        streaming: bool = True,
        deadline: float = 120.0,
        node_id: str = "chatOpenAI",
    ) -> None:
        self.services = services
        self.config = config
        self.model = model
        self.params = dict(params)  # extra body fields: temperature, stop, ...
        self.streaming = streaming
        self.deadline = deadline  # seconds for the first byte and for each silence after it
        self.failures = ModelFailures(
            node_id, "ChatOpenAI", f"OpenAI-compatible server at {config.base_url}", secrets=(config.api_key,)
        )

    async def client(self) -> AsyncOpenAI:
        return await shared_client(self.services, self.config)

    @property
    def can_stream(self) -> bool:
        return self.streaming

    def stream(self, messages: Sequence[ChatTurn]) -> AsyncGenerator[TextChunks, None]:
        if self.streaming:
            return self._stream(messages)
        return self._complete(messages)

    def stream_with_tools(
        self, messages: Sequence[AgentTurn], tools: Sequence[ToolSchema]
    ) -> AsyncGenerator[TextChunks | ToolCalls, None]:
        """One round of OpenAI's tool calling (see `openai_tools`, which builds on this module)."""
        from streamwise.nodes.models import openai_tools

        return openai_tools.round_with_tools(self, messages, tools)

    async def _open(
        self, messages: Sequence[ChatTurn], *, stream: bool, body: dict[str, Any] | None = None
    ) -> httpx2.Response:
        """Send the request and wait for the response's head, within the deadline.

        Through the SDK's `post` (its documented way to call an endpoint as raw HTTP): it builds the
        request, authenticates and raises its errors, and the body is ours as it is. The typed
        `chat.completions.create` would walk every message in Python first (about 0.1 ms each: 125 ms
        for 1000 turns of history, on the event loop) and then parse every chunk (~100 µs each).
        """
        client = await self.client()
        if body is None:
            body = {"model": self.model, "messages": _messages(messages), "stream": stream, **self.params}
        try:
            async with asyncio.timeout(self.deadline):
                return await client.post(_COMPLETIONS, cast_to=httpx2.Response, body=body, stream=True)
        except TimeoutError:
            raise self.failures.first_byte_timeout(self.deadline) from None

    async def _stream(self, messages: Sequence[ChatTurn]) -> AsyncGenerator[TextChunks, None]:
        failures = self.failures
        splitter = SSEBlockSplitter()
        done = False
        # The first delta goes on as it came, an empty one too (OpenAI's carries only the role): the
        # run's `start` event is that delta, as Flowise sends it.
        first = True
        try:
            response = await self._open(messages, stream=True)
            try:
                reads = each_within(
                    response.aiter_bytes(), self.deadline, lambda: failures.silence_timeout(self.deadline)
                )
                async for chunk in reads:
                    if done:
                        continue  # read to the end so the connection goes back to the pool
                    texts: TextChunks = []
                    for block in splitter.feed(chunk):
                        # The common case, inline (a call per token adds up): see `_content`.
                        at = block.find(_CONTENT_KEY)
                        if at != -1 and block.startswith("data: ") and block.rfind(_DELTA_KEY, 0, at) != -1:
                            try:
                                content: str | None = _scanstring(block, at + _CONTENT_LEN)[0]
                            except ValueError:
                                content = None
                            if content:
                                texts.append(content)
                                first = False
                                continue
                            if first and content is not None:
                                texts.append("")
                                first = False
                                continue
                        try:
                            content = self._content(block)
                        except StreamDone:
                            done = True
                            break
                        except ModelError:
                            if texts:
                                yield texts  # what came before the failure, in the same read
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
                # However this ends (end, error, cancellation, aclose), close the response, so the
                # server sees the disconnect and stops generating.
                await response.aclose()
        except openai.OpenAIError as exc:
            raise self._error(exc) from None
        except BODY_ERRORS as exc:
            raise self._body_error(exc) from None

    async def _complete(self, messages: Sequence[ChatTurn]) -> AsyncGenerator[TextChunks, None]:
        message = await self.completion_message(messages)
        yield [message.get("content") or ""]

    async def completion_message(
        self, messages: Sequence[ChatTurn], *, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A non-streamed completion's message (`choices[0].message`), checked to be an object."""
        try:
            response = await self._open(messages, stream=False, body=body)
            try:
                async with asyncio.timeout(self.deadline):
                    answer = await response.aread()
            except TimeoutError:
                raise self.failures.silence_timeout(self.deadline) from None
            finally:
                await response.aclose()
        except openai.OpenAIError as exc:
            raise self._error(exc) from None
        except BODY_ERRORS as exc:
            raise self._body_error(exc) from None
        try:
            message = json.loads(answer)["choices"][0]["message"]
        except (ValueError, LookupError, TypeError):
            raise self.failures.malformed("a body that is not a chat completion") from None
        if not isinstance(message, dict):
            raise self.failures.malformed("a body that is not a chat completion")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise self.failures.malformed("a chat completion whose content is not text")
        return message

    def _content(self, block: str) -> str | None:
        """The text one event block carries; `StreamDone` at `[DONE]`; a model error for an error event."""
        # Fast path, on the block as it is: decode only the delta's content string, which is all a
        # token event carries that we use (decoding whole events was a quarter of the server's time
        # under load). Inside a JSON string a quote is always escaped, so '"content":"' can only be a
        # real key here.
        at = block.find(_CONTENT_KEY)
        if at != -1 and block.startswith("data: ") and block.rfind(_DELTA_KEY, 0, at) != -1:
            try:
                return _scanstring(block, at + len(_CONTENT_KEY))[0]
            except ValueError:
                pass  # let the full decode below say what is wrong
        text = data_field(block)
        if text is None:
            return None  # a comment or a data-less event
        if text == "[DONE]":
            raise StreamDone
        try:
            event = _decode(text)
            choices = event.get("choices")
            if choices:
                delta = choices[0].get("delta")
                return delta.get("content") if delta else None
        except (ValueError, AttributeError, TypeError):
            raise self.failures.malformed(f"a stream event that is not JSON: {text[:200]}") from None
        if "error" in event:
            raise self.failures.failed_mid_answer(_error_text(event))
        return None  # e.g. a usage-only chunk

    def _error(self, exc: openai.OpenAIError) -> ModelError:
        return sdk_error(self.failures, self.deadline, exc)

    def _body_error(self, exc: BaseException) -> ModelError:
        if isinstance(exc, httpx2.TimeoutException):
            return self.failures.silence_timeout(self.deadline)
        return self.failures.broke_off(_describe(exc))


def sdk_error(failures: ModelFailures, deadline: float, exc: openai.OpenAIError) -> ModelError:
    """What an `openai` SDK error means for the reader, for every node on the SDK (chat, embeddings)."""
    if isinstance(exc, openai.APIStatusError):
        retry_after = exc.response.headers.get("retry-after") if exc.response is not None else None
        return failures.status(exc.status_code, _error_text(exc.body) or exc.message, retry_after)
    refused = _connect_failure(exc)
    if refused is not None:
        return failures.unreachable(tidy(str(refused)) or type(refused).__name__)
    if isinstance(exc, openai.APITimeoutError):
        return failures.first_byte_timeout(deadline)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        return failures.unreachable(_describe(cause) if cause else exc.message)
    return failures.broke_off(str(exc))


def _error_text(body: object) -> str:
    """The message in an OpenAI-style error body ({"error": {"message": ...}}) or a looser variant."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            inner = inner.get("message") or inner.get("detail") or ""
        return inner if isinstance(inner, str) else json.dumps(inner)
    return body if isinstance(body, str) else ""


def _connect_failure(exc: BaseException) -> BaseException | None:
    """The connection-level cause of an SDK error, if any.

    The aiohttp transport reports a refused connection as a connect *timeout*; the cause chain tells
    the truth.
    """
    seen: BaseException | None = exc
    for _ in range(8):  # cause chains are short; bound the walk anyway
        if seen is None:
            return None
        if isinstance(seen, aiohttp.ClientConnectorError | ConnectionRefusedError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        return "timed out"
    return tidy(str(exc)) or type(exc).__name__


def _messages(turns: Sequence[ChatTurn]) -> list[dict[str, str]]:
    return [{"role": turn.role, "content": turn.content} for turn in turns]


def is_reasoning_model(name: str) -> bool:
    """Flowise's rule: these models reject temperature and stop."""
    if name.startswith(("o1", "o3", "o4")) or name == "codex-mini":
        return True
    return "gpt-5" in name and "-chat" not in name


def _new_client(config: ClientConfig) -> AsyncOpenAI:
    client = AsyncOpenAI(
        base_url=config.base_url,
        api_key=config.api_key,
        timeout=config.timeout if config.timeout is not None else openai.NOT_GIVEN,
        # A retry cannot be invisible here: a streamed answer may already be on its way to the user.
        max_retries=0,
        default_headers=dict(config.headers) or None,
        # aiohttp parses HTTP in C: reading a 2000-chunk stream takes about half the time of the
        # default pure-Python transport (measured in bench/), and the SDK keeps its request building.
        http_client=openai.DefaultAioHttpClient(limits=UPSTREAM_LIMITS),
    )
    client.chat.completions  # noqa: B018  # built on first access: ~15 ms, so do it here too
    return client


async def shared_client(services: NodeServices, config: ClientConfig) -> AsyncOpenAI:
    """One client per configuration, shared by every request that uses it.

    Building one costs 20-50 ms of CPU (TLS context, connection pool, the SDK's resources), which on
    the event loop would stall every stream: it is built in a worker thread, once, however many first
    requests arrive together.
    """
    key = ("chatOpenAI", config)
    found = services.cache.get(key)
    if isinstance(found, AsyncOpenAI):
        return found
    pending = services.cache.get(("chatOpenAI.building", config))
    if not isinstance(pending, asyncio.Future):
        pending = asyncio.ensure_future(asyncio.to_thread(_new_client, config))
        services.cache[("chatOpenAI.building", config)] = pending
    try:
        client: AsyncOpenAI = await asyncio.shield(pending)
    finally:
        if pending.done():
            services.cache.pop(("chatOpenAI.building", config), None)
    services.cache[key] = client
    return client


def base_options(inputs_: Mapping[str, Any], node_id: str, label: str = "ChatOpenAI") -> dict[str, str]:
    """Flowise's BaseOptions: a JSON object of extra headers (its text, or the object)."""
    raw = inputs_.get("baseOptions")
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise NodeConfigError(
                f"Node {node_id}: invalid JSON in {label}'s BaseOptions: {exc}", node_id
            ) from None
    if not isinstance(raw, dict):
        raise NodeConfigError(f"Node {node_id}: {label}'s BaseOptions must be a JSON object", node_id)
    return {str(name): str(value) for name, value in raw.items()}


def base_url_of(inputs_: Mapping[str, Any], services: NodeServices) -> str:
    """The node's `basepath`/`basePath`, else the server's default, else `OPENAI_BASE_URL`, else OpenAI."""
    return (
        inputs.text(inputs_, "basepath")
        or inputs.text(inputs_, "basePath")
        or services.openai_base_url
        or services.env.get("OPENAI_BASE_URL")
        or OFFICIAL_BASE_URL
    )


def api_key_of(inputs_: Mapping[str, Any], services: NodeServices) -> str:
    """The node's credential (`openAIApiKey`, set by the server from its credential record), else
    `OPENAI_API_KEY`, else a placeholder that local servers accept."""
    return inputs.text(inputs_, KEY_INPUT) or services.env.get("OPENAI_API_KEY") or NO_KEY


def build(node_id: str, inputs_: Mapping[str, Any], services: NodeServices) -> ChatOpenAI:
    model = inputs.text(inputs_, "modelName", "gpt-4o-mini") or "gpt-4o-mini"
    base_url = base_url_of(inputs_, services)
    check_model_host(node_id, "ChatOpenAI", base_url, services.model_allowed_hosts)
    api_key = api_key_of(inputs_, services)
    timeout_ms = inputs.number(inputs_, "timeout", node_id)
    if timeout_ms is not None and timeout_ms <= 0:
        raise NodeConfigError(
            f"Node {node_id}: input 'timeout' must be a positive number of milliseconds", node_id
        )
    timeout = timeout_ms / 1000 if timeout_ms is not None else None

    params: dict[str, Any] = {}
    reasoning = is_reasoning_model(model)
    temperature = inputs.number(inputs_, "temperature", node_id, 0.9)
    if temperature is not None and not reasoning:
        params["temperature"] = temperature
    max_tokens = inputs.integer(inputs_, "maxTokens", node_id)
    if max_tokens is not None:
        params["max_completion_tokens"] = max_tokens  # what Flowise v8 sends
    for flowise_name, body_name in (
        ("topP", "top_p"),
        ("frequencyPenalty", "frequency_penalty"),
        ("presencePenalty", "presence_penalty"),
    ):
        value = inputs.number(inputs_, flowise_name, node_id)
        if value is not None:
            params[body_name] = value
    stop = inputs.text(inputs_, "stopSequence")
    if stop and not reasoning:
        params["stop"] = [word.strip() for word in stop.split(",") if word.strip()]
    effort = inputs.text(inputs_, "reasoningEffort")
    if effort and reasoning:
        params["reasoning_effort"] = effort

    headers = tuple(sorted(base_options(inputs_, node_id).items()))
    config = ClientConfig(base_url.rstrip("/"), api_key, timeout, headers)
    return ChatOpenAI(
        services,
        config,
        model=model,
        params=params,
        streaming=inputs.flag(inputs_, "streaming", True),
        # The node's own timeout wins over the server-wide model deadline.
        deadline=timeout if timeout is not None else services.model_timeout_seconds,
        node_id=node_id,
    )


SPEC = NodeSpec(
    name="chatOpenAI",
    label="ChatOpenAI",
    category="Chat Models",
    build=build,
    honoured=(
        "modelName",
        "temperature",
        "maxTokens",
        "topP",
        "frequencyPenalty",
        "presencePenalty",
        "timeout",
        "basepath",
        "basePath",
        "streaming",
        "stopSequence",
        "baseOptions",
        "reasoningEffort",
        KEY_INPUT,
    ),
    # The key is the credential's: no request may send another one.
    protected=frozenset({KEY_INPUT}),
    ignored=(
        "credential",
        "credentialId",
        "cache",
        "allowImageUploads",
        "imageResolution",
        "reasoning",
        "reasoningSummary",
        "strictToolCalling",
        "proxyUrl",
    ),
)
