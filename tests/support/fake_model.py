"""A scripted fake chat model, for tests and benchmarks only: it is not in the package.

A server gets it by naming this module in STREAMWISE_NODE_MODULES (`tests.support.fake_model`); the
test fixtures and the benchmark do so.

Node name "scriptedFakeChatModel". Inputs:
- `tokens`: a JSON list of chunks, or text split into words (spaces kept on the following word);
- `tokenCount`: instead of `tokens`, generate that many chunks "t0 ", "t1 ", ...;
- `echo`: answer with what the model was sent ("role: content" per message, joined by " | ");
- `delayMs`: pause before each chunk; `failAt`: raise after that many chunks (0 = before any);
- `streaming`: false makes it a model that cannot stream (the whole answer comes as one chunk);
- `probe`: a name under which the model records how far it got (`FakeProbe`), for tests that check
  a cancelled run really stopped generating.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamwise.engine.ports import ChatTurn, TextChunks
from streamwise.errors import ModelUnavailable, NodeConfigError
from streamwise.nodes import inputs as read
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec


class FakeModelFailure(ModelUnavailable):
    """The failure a scripted model was told to produce (a model failure, like a real one's)."""


@dataclass
class FakeProbe:
    """How far each generation of a named fake model got."""

    started: int = 0
    emitted: int = 0  # chunks produced over all generations
    cancelled: int = 0
    finished: int = 0
    last_messages: list[ChatTurn] = field(default_factory=list)


def probe(services: NodeServices, name: str) -> FakeProbe:
    key = ("fake-probe", name)
    found = services.cache.get(key)
    if not isinstance(found, FakeProbe):
        found = FakeProbe()
        services.cache[key] = found
    return found


@dataclass(frozen=True)
class ScriptedFakeChatModel:
    tokens: Sequence[str]
    echo: bool = False
    delay: float = 0.0
    fail_at: int | None = None
    streaming: bool = True
    probe: FakeProbe | None = None
    node_id: str = "scriptedFakeChatModel"

    @property
    def can_stream(self) -> bool:
        return self.streaming

    def script(self, messages: Sequence[ChatTurn]) -> Sequence[str]:
        if not self.echo:
            return self.tokens
        text = " | ".join(f"{turn.role}: {turn.content}" for turn in messages)
        return tuple(split_words(text))

    async def stream(self, messages: Sequence[ChatTurn]) -> AsyncGenerator[TextChunks, None]:
        chunks = self.script(messages)
        record = self.probe
        if record is not None:
            record.started += 1
            record.last_messages = list(messages)
        try:
            if not self.streaming:
                if self.delay:
                    await asyncio.sleep(self.delay * len(chunks))
                if self.fail_at is not None:
                    raise FakeModelFailure(
                        f"Node {self.node_id}: scripted failure after {self.fail_at} tokens"
                    )
                yield ["".join(chunks)]
                return
            for index, chunk in enumerate(chunks):
                if self.fail_at is not None and index == self.fail_at:
                    raise FakeModelFailure(f"Node {self.node_id}: scripted failure after {index} tokens")
                if self.delay:
                    await asyncio.sleep(self.delay)
                if record is not None:
                    record.emitted += 1
                yield [chunk]  # one chunk at a time, like a model decoding token by token
            if self.fail_at is not None and self.fail_at >= len(chunks):
                raise FakeModelFailure(f"Node {self.node_id}: scripted failure after {len(chunks)} tokens")
        except (asyncio.CancelledError, GeneratorExit):
            if record is not None:
                record.cancelled += 1
            raise
        if record is not None:
            record.finished += 1


def split_words(text: str) -> list[str]:
    """Words with their leading space, so that joining the chunks gives the text back."""
    chunks: list[str] = []
    for index, word in enumerate(text.split(" ")):
        chunks.append(word if index == 0 else " " + word)
    return [chunk for chunk in chunks if chunk]


class Counted(Sequence[str]):
    """`t0 `, `t1 `, ... made on demand, so a large tokenCount costs no memory up front."""

    def __init__(self, count: int) -> None:
        self.size = max(0, count)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [f"t{i} " for i in range(*index.indices(self.size))]
        if not -self.size <= index < self.size:
            raise IndexError(index)
        return f"t{index % self.size} "


def _tokens(node_id: str, inputs: Mapping[str, Any]) -> Sequence[str]:
    count = read.integer(inputs, "tokenCount", node_id)
    if count is not None:
        return Counted(count)
    raw = inputs.get("tokens")
    if isinstance(raw, list):
        return tuple(str(item) for item in raw)
    if isinstance(raw, str) and raw.strip().startswith("["):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            raise NodeConfigError(f"Node {node_id}: tokens is not a valid JSON list", node_id) from None
        return tuple(str(item) for item in parsed)
    return tuple(split_words(raw if isinstance(raw, str) else "Hello from the scripted fake model."))


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> ScriptedFakeChatModel:
    delay = read.number(inputs, "delayMs", node_id, 0.0)
    probe_name = read.text(inputs, "probe")
    return ScriptedFakeChatModel(
        tokens=_tokens(node_id, inputs),
        echo=read.flag(inputs, "echo", False),
        delay=(delay or 0.0) / 1000.0,
        fail_at=read.integer(inputs, "failAt", node_id),
        streaming=read.flag(inputs, "streaming", True),
        probe=probe(services, probe_name) if probe_name else None,
        node_id=node_id,
    )


SPEC = NodeSpec(
    name="scriptedFakeChatModel",
    label="Scripted Fake Chat Model (tests only)",
    category="Chat Models",
    build=build,
    honoured=("tokens", "tokenCount", "echo", "delayMs", "failAt", "streaming", "probe"),
    protected=frozenset({"probe"}),
)
