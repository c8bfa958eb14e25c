"""An OpenAI- and Ollama-compatible stub server for tests and benchmarks.

Endpoints:
    POST /v1/chat/completions   OpenAI chat completions (SSE when "stream": true, JSON otherwise)
    POST /api/chat              Ollama chat (NDJSON unless "stream": false)
    POST /v1/embeddings         OpenAI embeddings ("input": a string or a list of strings)
    POST /api/embed             Ollama embeddings ("input": a string or a list of strings)
    POST /api/embeddings        Ollama's older embeddings endpoint (one "prompt" per request)
    GET  /_stub/requests        what the stub saw, as a JSON list of `RequestRecord`s (oldest first)
    DELETE /_stub/requests      forget them
    GET  /_stub/health          "ok" once serving

Token i of an answer is f"t{i} ", so the whole answer of N tokens is `expected_text(N)`.

Behaviour is chosen per request, so one stub serves many tests. Controls are query-string pairs after
"stub?" in the request's model name, e.g. model "stub?tokens=50&delay=0.01&drop=5", or in an
`X-Stub-Control` header with the same syntax (header wins). Any other model name gets the defaults.
    tokens=N    answer with N tokens (default: the server's --tokens, 20)
    delay=S     sleep S seconds before each token (default: the server's --delay, 0)
    status=C    answer HTTP C with an error body before any token
    message=M   the error message for status / error (default "stub failure")
    drop=K      send K tokens, then drop the connection without finishing the response
    error=K     send K tokens, then an in-stream error event, then end the stream
    retry=S     with status=C, also send `Retry-After: S`
    hang=1      read the request, then send nothing at all until the client leaves
    stall=K     send K tokens, then go silent until the client leaves
    calls=JSON  answer a request that offers tools with scripted tool calls, round by round (also
                split=N, answer=tools, preamble=1): see tests/support/stub_tools.py
Other keys are ignored, which helps tell requests apart ("stub?tokens=5&case=cancel"). drop and error
apply to streamed answers only; a non-streamed answer is always whole.

The embeddings endpoints read status, message, retry and hang as above; delay=S waits S seconds once,
before the answer. Their vectors are `stub_embedding(text, dims)`: a hashed bag of words, normalised, so
texts that share words are similar and the same text always gets the same vector. Their own controls:
    dims=N      vectors of N dimensions (default 64; an OpenAI request's "dimensions" field wins)
    reverse=1   OpenAI: list the vectors last to first (each still carries its "index")
    vectors=K   answer with only the first K vectors (a malformed answer)
    legacy=1    behave like an Ollama without /api/embed: that path answers 404, /api/embeddings works

Each request is recorded: how many tokens went out before the client went away, whether the client
disconnected mid-answer, the JSON body and the headers.

From a test:
    with serve_in_thread() as stub:          # uvicorn on 127.0.0.1, random free port, this process
        stub.base_url                         # "http://127.0.0.1:PORT/v1" (OpenAI); stub.url for Ollama
        stub.records()                        # list[RequestRecord]
From a benchmark, in its own process (uvloop + httptools):
    with serve_in_subprocess(tokens=2000) as stub: ...
From a shell:
    python -m tests.support.openai_stub --port 8001 --tokens 2000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import httpx
import uvicorn

from tests.support import stub_tools

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = tuple[tuple[bytes, bytes], ...]

CONTROL_HEADER = b"x-stub-control"


def expected_text(tokens: int) -> str:
    return "".join(f"t{i} " for i in range(tokens))


EMBEDDING_DIMS = 64
_WORDS = re.compile(r"\w+")


def stub_embedding(text: str, dims: int = EMBEDDING_DIMS) -> list[float]:
    """The stub's vector for `text`: each lower-cased word adds ±1 to a dimension picked by its hash,
    then the vector is normalised. A text without words gets the first unit vector."""
    vector = [0.0] * dims
    for word in _WORDS.findall(text.lower()):
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        vector[digest % dims] += 1.0 if (digest >> 63) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [x / norm for x in vector]


@dataclass(frozen=True, slots=True)
class Controls:
    tokens: int = 20
    delay: float = 0.0
    status: int | None = None
    message: str = "stub failure"
    drop: int | None = None
    error: int | None = None
    retry: str | None = None
    hang: bool = False
    stall: int | None = None
    # Embeddings only (see the module's docstring).
    dims: int = EMBEDDING_DIMS
    reverse: bool = False
    vectors: int | None = None
    legacy: bool = False
    # Tool calling (see tests/support/stub_tools.py).
    calls: str | None = None
    split: int = 4
    answer: str | None = None
    preamble: bool = False

    def merged(self, query: str) -> Controls:
        changes: dict[str, Any] = {}
        for key, value in parse_qsl(query):
            if key in ("tokens", "status", "drop", "error", "stall", "dims", "vectors", "split"):
                changes[key] = int(value)
            elif key in ("retry", "calls", "answer"):
                changes[key] = value
            elif key in ("hang", "reverse", "legacy", "preamble"):
                changes[key] = value not in ("", "0", "false")
            elif key == "delay":
                changes[key] = float(value)
            elif key == "message":
                changes[key] = value
        return dataclasses.replace(self, **changes)


@dataclass(slots=True)
class RequestRecord:
    id: int
    path: str
    model: str
    stream: bool
    body: dict[str, Any]
    headers: dict[str, str]
    tokens_sent: int = 0
    disconnected: bool = False  # the client went away before the answer was complete
    completed: bool = False  # the whole answer (or the requested failure) went out
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None


class Recorder:
    """Request records, shared between the server's thread and the test's."""

    def __init__(self, limit: int = 1000) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=limit)
        self._lock = threading.Lock()
        self._next_id = 0

    def new(
        self, path: str, model: str, stream: bool, body: dict[str, Any], headers: dict[str, str]
    ) -> RequestRecord:
        with self._lock:
            self._next_id += 1
            record = RequestRecord(self._next_id, path, model, stream, body, headers)
            self._records.append(record)
            return record

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return [dataclasses.replace(r, body=dict(r.body), headers=dict(r.headers)) for r in self._records]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


class _Drop(Exception):
    """Raised inside the app to make uvicorn cut the connection mid-response."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _Drop))


_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


INTERLEAVE = 64  # with no delay, let other answers go on after this many tokens


class StubApp:
    """The raw ASGI app. Frames are built from pre-encoded halves: only the token's JSON varies."""

    def __init__(self, defaults: Controls | None = None, recorder: Recorder | None = None) -> None:
        self.defaults = defaults or Controls()
        self.recorder = recorder or Recorder()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "POST" and path in ("/v1/chat/completions", "/api/chat"):
            await self._chat(scope, receive, send, ollama=path == "/api/chat")
        elif method == "POST" and path in _EMBEDDING_PATHS:
            await self._embeddings(scope, receive, send)
        elif path == "/_stub/requests" and method in ("GET", "DELETE"):
            if method == "DELETE":
                self.recorder.clear()
            records = [dataclasses.asdict(r) for r in self.recorder.snapshot()] if method == "GET" else []
            await _respond(send, 200, records)
        elif path == "/_stub/health":
            await _respond(send, 200, "ok")
        else:
            await _respond(send, 404, {"error": "not found"})

    async def _chat(self, scope: Scope, receive: Receive, send: Send, *, ollama: bool) -> None:
        raw = bytearray()
        while True:  # ends when the client has sent the whole body (or left)
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            body = json.loads(raw)
        except ValueError:
            await _respond(send, 400, {"error": "body is not JSON"})
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        model = str(body.get("model", ""))
        controls = self.defaults
        if model.startswith("stub?"):
            controls = controls.merged(model[5:])
        if CONTROL_HEADER.decode() in headers:
            controls = controls.merged(headers[CONTROL_HEADER.decode()])
        stream = bool(body.get("stream", ollama))  # Ollama streams unless told not to; OpenAI the reverse
        record = self.recorder.new(scope["path"], model, stream, body, headers)
        dialect = OLLAMA if ollama else OPENAI
        try:
            if controls.hang:
                while (await receive())["type"] != "http.disconnect":
                    pass
                record.disconnected = True
                return
            calls = stub_tools.calls_due(body, controls.calls)
            if controls.status is not None:
                extra = ((b"retry-after", controls.retry.encode()),) if controls.retry else ()
                await _respond(send, controls.status, dialect.error(controls.message, controls.status), extra)
            elif calls is not None or (controls.answer == "tools" and body.get("tools")):
                await self._tool_round(send, record, controls, body, calls, stream=stream, ollama=ollama)
            elif not stream:
                await _respond(send, 200, dialect.answer(model, controls.tokens))
            else:
                await self._stream(receive, send, record, controls, dialect)
                return
            record.completed = True
        finally:
            record.ended = time.monotonic()

    async def _tool_round(
        self,
        send: Send,
        record: RequestRecord,
        c: Controls,
        body: dict[str, Any],
        calls: list[stub_tools.Call] | None,
        *,
        stream: bool,
        ollama: bool,
    ) -> None:
        """A round of a scripted tool-calling conversation: its calls, or the answer from the results."""
        model = record.model
        if c.delay:
            await asyncio.sleep(c.delay)
        if calls is not None:
            if not stream:
                answer = (
                    stub_tools.ollama_answer(model, calls)
                    if ollama
                    else stub_tools.openai_answer(model, body, calls)
                )
                await _respond(send, 200, answer)
                return
            payload = (
                stub_tools.ollama_stream(model, calls)
                if ollama
                else stub_tools.openai_stream(model, body, calls, c.split, c.preamble)
            )
        else:
            words = stub_tools.answer_words(body)
            if not stream:
                text = "".join(words)
                message = {"role": "assistant", "content": text}
                answer = (
                    {"model": model, "message": message, "done": True}
                    if ollama
                    else {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
                )
                await _respond(send, 200, answer)
                return
            payload = (
                stub_tools.text_stream_ollama(model, words)
                if ollama
                else stub_tools.text_stream_openai(model, words)
            )
            record.tokens_sent = len(words)
        headers = OLLAMA.stream_headers if ollama else OPENAI.stream_headers
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload, "more_body": False})

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body", False):
                break
        path = scope["path"]
        ollama = path != "/v1/embeddings"
        try:
            body = json.loads(raw)
        except ValueError:
            await _respond(send, 400, {"error": "body is not JSON"})
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        model = str(body.get("model", ""))
        controls = self.defaults
        if model.startswith("stub?"):
            controls = controls.merged(model[5:])
        if CONTROL_HEADER.decode() in headers:
            controls = controls.merged(headers[CONTROL_HEADER.decode()])
        record = self.recorder.new(path, model, False, body, headers)
        dialect = OLLAMA if ollama else OPENAI
        try:
            if controls.legacy and path == "/api/embed":
                # What an Ollama from before /api/embed says: Go's plain-text 404.
                await _respond_text(send, 404, b"404 page not found")
            elif controls.hang:
                while (await receive())["type"] != "http.disconnect":
                    pass
                record.disconnected = True
                return
            elif controls.status is not None:
                if controls.delay:
                    await asyncio.sleep(controls.delay)
                extra = ((b"retry-after", controls.retry.encode()),) if controls.retry else ()
                await _respond(send, controls.status, dialect.error(controls.message, controls.status), extra)
            else:
                if controls.delay:
                    await asyncio.sleep(controls.delay)
                await _respond(send, 200, _embedding_answer(path, model, body, controls))
            record.completed = True
        finally:
            record.ended = time.monotonic()

    async def _stream(
        self, receive: Receive, send: Send, record: RequestRecord, c: Controls, dialect: Dialect
    ) -> None:
        async def watch_disconnect() -> None:
            # uvicorn answers http.disconnect both when the client leaves and when the response is done.
            await receive()
            if not record.completed:
                record.disconnected = True

        watcher = asyncio.ensure_future(watch_disconnect())
        try:
            head, tail, first, finish = dialect.frames(record.model, c.tokens)
            await send({"type": "http.response.start", "status": 200, "headers": dialect.stream_headers})
            if first:
                await send({"type": "http.response.body", "body": first, "more_body": True})
            for i in range(min(x for x in (c.tokens, c.drop, c.error) if x is not None)):
                if c.delay:
                    await asyncio.sleep(c.delay)
                elif i % INTERLEAVE == INTERLEAVE - 1:
                    # A real server decodes all its running answers a step at a time, so concurrent
                    # streams advance together; without this, one answer would go out whole before
                    # the next request is even read.
                    await asyncio.sleep(0)
                if record.disconnected:
                    return
                frame = head + _json(f"t{i} ").encode() + tail
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                record.tokens_sent = i + 1
                if c.stall is not None and record.tokens_sent >= c.stall:
                    await watcher  # silent until the client leaves
                    return
            if record.disconnected:
                return
            record.completed = True
            if c.drop is not None and c.drop <= c.tokens:
                raise _Drop
            if c.error is not None and c.error <= c.tokens:
                finish = dialect.frame(dialect.error(c.message, 500))
            await send({"type": "http.response.body", "body": finish, "more_body": False})
        finally:
            watcher.cancel()
            record.ended = time.monotonic()


async def _respond(send: Send, status: int, payload: object, extra: Headers = ()) -> None:
    body = _json(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _respond_text(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


_EMBEDDING_PATHS = frozenset({"/v1/embeddings", "/api/embed", "/api/embeddings"})


def _embedding_inputs(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item if isinstance(item, str) else json.dumps(item) for item in value]
    return []


def _embedding_answer(path: str, model: str, body: dict[str, Any], c: Controls) -> dict[str, Any]:
    """The answer of one embeddings endpoint, in its own wire format."""
    if path == "/api/embeddings":
        return {"embedding": stub_embedding(str(body.get("prompt", "")), c.dims)}
    texts = _embedding_inputs(body.get("input"))
    if path == "/api/embed":
        vectors = [stub_embedding(text, c.dims) for text in texts][: c.vectors]
        return {
            "model": model,
            "embeddings": vectors,
            "total_duration": 1000,
            "prompt_eval_count": len(texts),
        }
    dims = body.get("dimensions")
    dims = dims if isinstance(dims, int) and dims > 0 else c.dims
    base64_wanted = body.get("encoding_format") == "base64"
    data: list[dict[str, Any]] = []
    for index, text in enumerate(texts[: c.vectors]):
        vector = stub_embedding(text, dims)
        encoded: object = (
            base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if base64_wanted else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    if c.reverse:
        data.reverse()
    words = sum(len(_WORDS.findall(text)) for text in texts)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": words, "total_tokens": words},
    }


class Dialect:
    """OpenAI's wire format; `OllamaDialect` overrides it."""

    stream_headers: ClassVar[Headers] = (
        (b"content-type", b"text/event-stream"),
        (b"cache-control", b"no-cache"),
    )

    def frame(self, event: object) -> bytes:
        return b"data: " + _json(event).encode() + b"\n\n"

    def frames(self, model: str, tokens: int) -> tuple[bytes, bytes, bytes, bytes]:
        """(before a token's JSON, after it, first frame, last frames) of a streamed answer."""
        common = f'"id":"chatcmpl-stub","object":"chat.completion.chunk","created":{int(time.time())}'
        common += f',"model":{_json(model)},"choices":[{{"index":0,"delta":'
        head = f'data: {{{common}{{"content":'.encode()
        tail = b'},"logprobs":null,"finish_reason":null}]}\n\n'
        first = f'data: {{{common}{{"role":"assistant","content":""{tail.decode()}'
        finish = f'data: {{{common}{{}},"logprobs":null,"finish_reason":"stop"}}]}}\n\ndata: [DONE]\n\n'
        return head, tail, first.encode(), finish.encode()

    def answer(self, model: str, tokens: int) -> dict[str, Any]:
        message = {"role": "assistant", "content": expected_text(tokens)}
        return {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1},
        }

    def error(self, message: str, status: int) -> dict[str, Any]:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class OllamaDialect(Dialect):
    stream_headers: ClassVar[Headers] = ((b"content-type", b"application/x-ndjson"),)

    def frame(self, event: object) -> bytes:
        return _json(event).encode() + b"\n"

    def frames(self, model: str, tokens: int) -> tuple[bytes, bytes, bytes, bytes]:
        common = f'"model":{_json(model)},"created_at":"2026-01-01T00:00:00Z","message":{{"role":"assistant"'
        head = f'{{{common},"content":'.encode()
        finish = self.frame(self.answer(model, 0) | {"eval_count": tokens})
        return head, b'},"done":false}\n', b"", finish

    def answer(self, model: str, tokens: int) -> dict[str, Any]:
        message = {"role": "assistant", "content": expected_text(tokens)}
        return {
            "model": model,
            "created_at": "2026-01-01T00:00:00Z",
            "message": message,
            "done_reason": "stop",
            "done": True,
            "eval_count": tokens,
        }

    def error(self, message: str, status: int) -> dict[str, Any]:
        return {"error": message}


OPENAI, OLLAMA = Dialect(), OllamaDialect()


class StubServer:
    """A running stub: where it listens and what it has seen."""

    def __init__(self, url: str, recorder: Recorder | None) -> None:
        self.url = url  # root, e.g. Ollama's base URL
        self.base_url = url + "/v1"  # OpenAI's base URL
        self._recorder = recorder  # None when the stub runs in another process

    def records(self) -> list[RequestRecord]:
        if self._recorder is not None:
            return self._recorder.snapshot()
        response = httpx.get(self.url + "/_stub/requests", timeout=5)
        response.raise_for_status()
        return [RequestRecord(**item) for item in response.json()]

    def clear(self) -> None:
        if self._recorder is not None:
            self._recorder.clear()
        else:
            httpx.delete(self.url + "/_stub/requests", timeout=5).raise_for_status()

    def last(self, model: str | None = None) -> RequestRecord:
        """The latest request (for `model`, when given)."""
        for record in reversed(self.records()):
            if model is None or record.model == model:
                return record
        raise AssertionError(f"the stub has received no request for model {model!r}")

    async def wait_for(self, check: Callable[[RequestRecord], bool], within: float = 5.0) -> RequestRecord:
        """The first record that passes `check`, polling without blocking the caller's event loop."""
        deadline = time.monotonic() + within
        while True:
            for record in self.records():
                if check(record):
                    return record
            if time.monotonic() > deadline:
                raise AssertionError(f"no stub request matched within {within} s: {self.records()[-3:]}")
            await asyncio.sleep(0.01)


def _listening_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _config(app: StubApp, loop: str) -> uvicorn.Config:
    errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in errors.filters):
        errors.addFilter(_QuietDrops())
    return uvicorn.Config(
        app,
        loop=loop,
        http="httptools",
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=2,
    )


@contextlib.contextmanager
def serve_in_thread(
    defaults: Controls | None = None, *, startup_timeout: float = 10.0
) -> Iterator[StubServer]:
    """Run the stub on a background thread of this process, on a free loopback port."""
    app = StubApp(defaults)
    server = uvicorn.Server(_config(app, loop="uvloop"))
    sock = _listening_socket()
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"openai-stub-{port}")
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the OpenAI stub did not start")
            time.sleep(0.005)
        yield StubServer(f"http://127.0.0.1:{port}", app.recorder)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextlib.contextmanager
def serve_in_subprocess(
    tokens: int = 20, delay: float = 0.0, *, startup_timeout: float = 20.0
) -> Iterator[StubServer]:
    """Run the stub in its own process (uvloop + httptools), as the benchmark does."""
    sock = _listening_socket()
    port = sock.getsockname()[1]
    command = [sys.executable, "-m", "tests.support.openai_stub", "--fd", str(sock.fileno())]
    command += ["--tokens", str(tokens), "--delay", str(delay)]
    repo_root = Path(__file__).resolve().parents[2]  # where `tests` is importable from
    process = subprocess.Popen(command, pass_fds=[sock.fileno()], cwd=repo_root)
    sock.close()  # the child holds it now
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the OpenAI stub exited with code {process.returncode}")
            try:
                if httpx.get(url + "/_stub/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the OpenAI stub did not start")
            time.sleep(0.05)
        yield StubServer(url, None)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--fd", type=int, default=None, help="serve on this inherited listening socket")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per answer unless the request says")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each token")
    args = parser.parse_args(argv)
    app = StubApp(Controls(tokens=args.tokens, delay=args.delay))
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)  # uvicorn's own --fd assumes a Unix socket
    else:
        sock = _listening_socket(args.host, args.port)
        print(
            f"OpenAI stub on http://{args.host}:{args.port}/v1 (Ollama: http://{args.host}:{args.port})",
            flush=True,
        )
    logging.basicConfig(level=logging.WARNING)
    uvicorn.Server(_config(app, loop="uvloop")).run(sockets=[sock])


if __name__ == "__main__":
    main()
