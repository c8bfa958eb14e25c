"""Strict reading of Flowise-framed SSE bytes, for assertions."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Frame:
    event: str
    data: Any


def parse_frames(raw: bytes, *, allow_heartbeats: bool = True) -> list[Frame]:
    """Every frame must be exactly `message:\\ndata:<one-line JSON>\\nid:<run id>:<n>\\n\\n` (one run,
    numbers counting up by one) or the heartbeat comment."""
    assert raw.endswith(b"\n\n"), raw[-80:]
    frames: list[Frame] = []
    ids: list[tuple[bytes, int]] = []
    for chunk in raw[:-2].split(b"\n\n"):
        if chunk == b":heartbeat":
            assert allow_heartbeats
            continue
        lines = chunk.split(b"\n")
        assert len(lines) == 3 and lines[0] == b"message:" and lines[1].startswith(b"data:"), chunk
        assert lines[2].startswith(b"id:"), chunk
        run, _, number = lines[2][len(b"id:") :].rpartition(b":")
        ids.append((run, int(number)))
        payload = json.loads(lines[1][len(b"data:") :])
        assert list(payload) == ["event", "data"], payload
        frames.append(Frame(payload["event"], payload["data"]))
    if ids:
        assert len({run for run, _ in ids}) == 1, ids[:3]
        numbers = [number for _, number in ids]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers[:10]
    return frames


def check_invariant(frames: list[Frame]) -> str:
    """Exactly one end, last; start before the first token; at most one start. Returns the text."""
    names = [frame.event for frame in frames]
    assert names.count("end") == 1 and names[-1] == "end", names
    assert names.count("start") <= 1, names
    if "token" in names:
        assert "start" in names and names.index("start") < names.index("token"), names
    return "".join(frame.data for frame in frames if frame.event == "token")


TOKEN_EVENT = b'"event":"token"'


def stream_acting_once(url: str, body: dict[str, Any], after_tokens: int, act: Callable[[], object]) -> bytes:
    """POST a streaming prediction and read it to the end, calling `act` once `after_tokens` token
    events have arrived (to abort it, or to signal the server). Returns every byte received."""
    received = bytearray()
    acted = False
    with httpx.Client(timeout=30) as client, client.stream("POST", url, json=body) as response:
        for chunk in response.iter_bytes():
            received.extend(chunk)
            if not acted and received.count(TOKEN_EVENT) >= after_tokens:
                act()
                acted = True
    return bytes(received)


def hang_up_after(url: str, body: dict[str, Any], tokens: int) -> None:
    """POST a streaming prediction and close the connection once `tokens` token events have arrived."""
    seen = 0
    with httpx.Client(timeout=30) as client, client.stream("POST", url, json=body) as response:
        for chunk in response.iter_bytes():
            seen += chunk.count(TOKEN_EVENT)
            if seen >= tokens:
                return
