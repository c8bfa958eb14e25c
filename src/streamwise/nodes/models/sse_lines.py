"""Incremental splitters for streamed model answers: SSE `data:` payloads and NDJSON lines.

They work on raw bytes and return every complete item a network read holds at once, so the caller can
hand several tokens on without waiting in between. A partial item is kept for the next read.
"""

from __future__ import annotations


class SSEDataSplitter:
    """Server-sent events → the payload of each event's `data` field (multi-line data joined by \\n)."""

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._rest + chunk if self._rest else chunk
        if b"\r" in data:
            # A CR at the very end may be the first half of a CRLF split across reads.
            held = b"\r" if data.endswith(b"\r") else b""
            data = data[: len(data) - len(held)].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + held
        blocks = data.split(b"\n\n")
        self._rest = blocks.pop()
        payloads: list[bytes] = []
        for block in blocks:
            # Nearly every event is exactly one "data: ..." line; only the rest need the general path.
            if block.startswith(b"data: ") and b"\n" not in block:
                payloads.append(block[6:])
            elif block:
                payload = _data_field(block)
                if payload is not None:
                    payloads.append(payload)
        return payloads

    def pending(self) -> bytes:
        """Bytes of an event that never got its closing blank line."""
        return self._rest


def _data_field(block: bytes) -> bytes | None:
    parts: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(parts) if parts else None  # comments and event/id/retry-only blocks carry no data


class LineSplitter:
    """Newline-delimited JSON → its non-blank lines."""

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._rest + chunk if self._rest else chunk
        lines = data.split(b"\n")
        self._rest = lines.pop()
        return [line for line in lines if line.strip()]

    def pending(self) -> bytes:
        return self._rest
