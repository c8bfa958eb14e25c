"""A lean HTTP/1.1 client for streamed answers: raw asyncio sockets, chunked decoding, frame counting.

The same client reads both sides of every comparison (the OpenAI stub directly, and Streamwise relaying
it), so its own cost must be identical for both and as small as possible. Per network read it:
  - parses HTTP with httptools (C; both servers stream with chunked transfer encoding) and joins
    the payload of all the chunks that read brought;
  - finds the last complete SSE frame (frames end with a blank line, b"\\n\\n");
  - counts frames and token events with `bytes.count` over the completed region (C speed);
  - notes the time of the first non-empty token event and of the end marker frame.
No JSON is parsed while timing. `verify_stream` parses a whole body once, outside the timed runs, to
check that what is being counted is the right answer.

Timestamps come from `time.perf_counter()` taken inside `data_received`, which uvloop calls as soon as
a read completes. Connections are opened (and kept alive) before a request's clock starts, so
connection setup is never part of a measured time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import httptools

CONNECT_TIMEOUT = 5.0
# uvicorn closes idle keep-alive connections after 5 s; reuse only connections younger than this.
MAX_IDLE_SECONDS = 3.0


@dataclass(frozen=True)
class Dialect:
    """How one server's stream looks: what marks a token event, an empty token, and the end."""

    name: str
    token_marker: bytes  # occurs once in every token event
    empty_token: bytes  # token_marker followed by an empty string
    end_frame: bytes  # the last frame, without its b"\n\n"
    error_marker: bytes  # starts an in-stream error event: the stream failed even if it ends well

    @property
    def end_suffix(self) -> bytes:
        return self.end_frame + b"\n\n"


# The stub's chunks carry `"delta":{"content":"t0 "}`; the first one is `{"role":"assistant","content":""}`
# (not a token event: it lacks this marker) and the last `"delta":{}` before `data: [DONE]`.
OPENAI = Dialect(
    "openai",
    token_marker=b'"delta":{"content":',
    empty_token=b'"delta":{"content":""',
    end_frame=b"data: [DONE]",
    error_marker=b'data: {"error"',
)
FLOWISE = Dialect(
    "flowise",
    token_marker=b'data:{"event":"token","data":',
    empty_token=b'data:{"event":"token","data":""',
    end_frame=b'message:\ndata:{"event":"end","data":"[DONE]"}',
    error_marker=b'data:{"event":"error","data":',
)


@dataclass(frozen=True)
class Target:
    """One request, pre-encoded, and how to read its answer."""

    host: str
    port: int
    request: bytes
    dialect: Dialect
    keep_body: bool = False  # keep the decoded body (for `verify_stream`), never while timing


def post_json(
    host: str,
    port: int,
    path: str,
    body: dict[str, Any],
    dialect: Dialect,
    headers: Mapping[str, str] | None = None,
) -> Target:
    """A pre-encoded POST of `body` as JSON; `headers` are added to the head as they are given."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    for name, value in (headers or {}).items():
        if any(c in name + value for c in "\r\n") or not name or ":" in name:
            raise ValueError(f"not a valid header line: {name!r}")
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\n{extra}Content-Length: {len(payload)}\r\n\r\n"
    ).encode()
    return Target(host, port, head + payload, dialect)


@dataclass
class StreamResult:
    status: int = 0
    sent: float = 0.0  # perf_counter when the request was written
    first_token: float | None = None  # when the first non-empty token event arrived
    last_token: float | None = None  # when the read holding the last token event arrived
    ended: float | None = None  # when the end marker frame arrived
    tokens: int = 0  # token events (empty ones included)
    empty_tokens: int = 0
    frames: int = 0
    reads: int = 0  # data_received calls
    end_last: bool = False  # the end marker was the last frame of the response
    error: str | None = None
    body: bytearray = field(default_factory=bytearray)  # only with Target.keep_body

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200 and self.end_last

    @property
    def total(self) -> float:
        assert self.ended is not None
        return self.ended - self.sent

    @property
    def ttft(self) -> float:
        assert self.first_token is not None
        return self.first_token - self.sent


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time. HTTP is parsed by httptools (llhttp, C), the
    parser uvicorn uses: it undoes the chunked encoding and hands over each chunk's payload."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.last_used = time.monotonic()
        self._done: asyncio.Future[StreamResult] | None = None
        self._result = StreamResult()
        self._dialect = OPENAI
        self._keep = False
        self._parser = httptools.HttpResponseParser(self)
        self._pieces: list[bytes] = []  # payload of the current network read
        self._complete = False
        self._sse = b""  # an incomplete SSE frame

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done is not None and not self._done.done():
            self._result.error = f"connection lost: {exc or 'closed by the server'}"
            self._done.set_result(self._result)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self._done is None:
            return  # nothing asked: stray bytes after a finished response
        self._result.reads += 1
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._result.error = f"bad HTTP response: {exc}"
            self._complete = True
        if self._pieces:
            pieces, self._pieces = self._pieces, []
            self._on_body(pieces[0] if len(pieces) == 1 else b"".join(pieces), now)
        if self._complete:
            self._finish()

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self._result.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._pieces.append(body)

    def on_message_complete(self) -> None:
        self._complete = True

    # request
    def start(self, target: Target) -> asyncio.Future[StreamResult]:
        assert self.transport is not None and self._done is None
        self._done = asyncio.get_running_loop().create_future()
        self._result = StreamResult()
        self._dialect = target.dialect
        self._keep = target.keep_body
        self._parser = httptools.HttpResponseParser(self)
        self._pieces, self._complete, self._sse = [], False, b""
        self._result.sent = time.perf_counter()
        self.transport.write(target.request)
        return self._done

    # the body
    def _on_body(self, piece: bytes, now: float) -> None:
        result = self._result
        if self._keep:
            result.body += piece
        data = self._sse + piece if self._sse else piece
        last = data.rfind(b"\n\n")
        if last < 0:
            self._sse = data
            return
        region, self._sse = data[: last + 2], data[last + 2 :]
        dialect = self._dialect
        tokens = region.count(dialect.token_marker)
        if tokens:
            empty = region.count(dialect.empty_token)
            if result.first_token is None and tokens > empty:
                result.first_token = now
            result.tokens += tokens
            result.empty_tokens += empty
            result.last_token = now
        result.frames += region.count(b"\n\n")
        at = region.find(dialect.error_marker)
        if at >= 0 and result.error is None:
            line = region[at:].split(b"\n", 1)[0]
            result.error = "in-stream error: " + line.decode(errors="replace")[:300]
        end_at = region.rfind(dialect.end_frame)
        # The end frame is the last one (Streamwise's frames carry an `id:` line after `data:`).
        if end_at >= 0 and region.find(b"\n\n", end_at) == len(region) - 2:
            result.ended = now
            result.end_last = True
        elif result.end_last:
            result.end_last = False  # something came after the end marker

    def _finish(self) -> None:
        self.last_used = time.monotonic()
        done, self._done = self._done, None
        if self._sse.strip():
            self._result.end_last = False  # an unterminated frame after the end marker
        if done is not None and not done.done():
            done.set_result(self._result)


class Pool:
    """Keep-alive connections to one host:port, opened before any clock starts."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._idle: list[_Connection] = []

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(_Connection, self.host, self.port), CONNECT_TIMEOUT
        )
        return conn

    async def acquire(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.last_used < MAX_IDLE_SECONDS:
                return conn
            _close(conn)
        return await self._open()

    async def acquire_many(self, n: int) -> list[_Connection]:
        reused = [await self.acquire() for _ in range(min(n, len(self._idle)))]
        fresh = await asyncio.gather(*(self._open() for _ in range(n - len(reused))))
        return reused + list(fresh)

    def release(self, conn: _Connection, result: StreamResult) -> None:
        if conn.closed or not result.ok:
            _close(conn)
        else:
            self._idle.append(conn)

    def close(self) -> None:
        for conn in self._idle:
            _close(conn)
        self._idle.clear()


def _close(conn: _Connection) -> None:
    if conn.transport is not None and not conn.closed:
        conn.transport.close()


async def request_on(conn: _Connection, target: Target, timeout: float) -> StreamResult:
    future = conn.start(target)
    try:
        return await asyncio.wait_for(future, timeout)
    except TimeoutError:
        _close(conn)
        result = StreamResult(error=f"no complete answer within {timeout} s")
        return result


async def stream_once(pool: Pool, target: Target, timeout: float = 30.0) -> StreamResult:
    """One request on a warm connection; the clock starts when the request is written."""
    conn = await pool.acquire()
    result = await request_on(conn, target, timeout)
    pool.release(conn, result)
    return result


@dataclass
class LoadResult:
    streams: int
    wall: float  # first request written → last end marker
    results: list[StreamResult]

    @property
    def failures(self) -> int:
        return sum(1 for r in self.results if not r.ok)

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.results)

    @property
    def events_per_second(self) -> float:
        return self.tokens / self.wall if self.wall > 0 else 0.0

    @property
    def max_ttft(self) -> float | None:
        ttfts = [r.ttft for r in self.results if r.first_token is not None]
        return max(ttfts) if len(ttfts) == len(self.results) else None


async def concurrent_streams(pool: Pool, target: Target, streams: int, timeout: float) -> LoadResult:
    """`streams` requests at once, each on its own already-open connection."""
    conns = await pool.acquire_many(streams)
    futures = [conn.start(target) for conn in conns]  # written back to back, before any read
    done, _ = await asyncio.wait(futures, timeout=timeout)
    results: list[StreamResult] = []
    for conn, future in zip(conns, futures, strict=True):
        if future in done:
            result = future.result()
        else:
            future.cancel()
            _close(conn)
            result = StreamResult(error=f"no complete answer within {timeout} s")
        results.append(result)
        pool.release(conn, result)
    start = min(r.sent for r in results)
    ends = [r.ended for r in results if r.ended is not None]
    wall = (max(ends) - start) if ends else float("nan")
    return LoadResult(streams, wall, results)


def verify_stream(result: StreamResult, dialect: Dialect, expected_text: str) -> list[str]:
    """Parse a kept body fully: the joined tokens must be the expected answer; returns the problems."""
    problems: list[str] = []
    if result.status != 200:
        problems.append(f"HTTP {result.status}: {bytes(result.body[:300])!r}")
        return problems
    frames = bytes(result.body).split(b"\n\n")
    if frames and frames[-1] == b"":
        frames.pop()
    text: list[str] = []
    if dialect is FLOWISE:
        events: list[str] = []
        for frame in frames:
            if frame.startswith(b":"):
                continue  # heartbeat comment
            if not frame.startswith(b"message:\ndata:"):
                problems.append(f"unexpected frame {frame[:80]!r}")
                continue
            event = json.loads(frame.split(b"\n")[1][len(b"data:") :])
            events.append(event["event"])
            if event["event"] == "token":
                text.append(event["data"])
        if not events or events[0] != "start":
            problems.append(f"first event is not start: {events[:3]}")
        if events.count("end") != 1 or events[-1] != "end":
            problems.append(f"end is not exactly once and last: {events[-3:]}")
        if "error" in events:
            problems.append("the stream holds an error event")
    else:
        for frame in frames:
            if frame == b"data: [DONE]":
                continue
            chunk = json.loads(frame[len(b"data: ") :])
            content = chunk["choices"][0]["delta"].get("content")
            if content:
                text.append(content)
    if "".join(text) != expected_text:
        joined = "".join(text)
        problems.append(
            f"answer differs: {len(joined)} chars, expected {len(expected_text)}: {joined[:80]!r}"
        )
    return problems
