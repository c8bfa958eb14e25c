"""The embedded model, called directly in this process, timed the way the server's stream is timed.

`local_model.measure_direct` gives tokens / (call → last chunk). The HTTP side can only see tokens
from the first one onwards, so `measure_direct_decode` also times the first content chunk: the rate
from the first token to the end of the call, the same span the server measurement covers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local_model import direct_request

from streamwise.nodes.models.chat_local import LocalSampling


@dataclass(frozen=True)
class DecodeTiming:
    tokens: int  # content chunks
    first: float  # seconds from the call to the first content chunk
    total: float  # seconds from the call to its return

    @property
    def decode_rate(self) -> float:
        """Tokens per second from the first token to the end (the first one starts the clock)."""
        span = self.total - self.first
        return (self.tokens - 1) / span if self.tokens > 1 and span > 0 else 0.0


def measure_direct_decode(server: Any, prompt: str, sampling: LocalSampling) -> DecodeTiming:
    """`xllamacpp.Server.handle_chat_completions` on this thread (it blocks), with the request that
    `LocalModelRuntime.stream_chat` sends for the same prompt and sampling."""
    count = 0
    first: float | None = None
    error: object = None

    def on_chunk(chunk: Mapping[str, Any]) -> bool:
        nonlocal count, first, error
        if "error" in chunk:
            error = chunk["error"]
            return True
        for choice in chunk.get("choices") or ():
            if (choice.get("delta") or {}).get("content"):
                if first is None:
                    first = time.perf_counter()
                count += 1
        return False

    started = time.perf_counter()
    server.handle_chat_completions(direct_request(prompt, sampling), on_chunk)
    ended = time.perf_counter()
    if error is not None:
        raise RuntimeError(f"direct request failed: {error}")
    return DecodeTiming(count, (first or ended) - started, ended - started)
