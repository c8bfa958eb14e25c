"""Exact top-10 search latency of the vector store backends, printed as JSON.

For each size (10,000 and 100,000 random unit vectors of 384 dimensions) and each backend (the
embedded SQLite store, memory, Faiss), it fills one store, then times `search(query, 10)` one query
at a time, through the async API as a node calls it (worker thread included), and checks every
answer against numpy's brute force. The embedded store keeps both sizes in one file, as namespaces
of one database, so the smaller namespace is measured with the larger one beside it.

    .venv/bin/python bench/bench_vectors.py [--queries 60] [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from streamwise.engine.retrieval import Document
from streamwise.vectors.faiss_folder import FaissFolderBackend
from streamwise.vectors.memory import MemoryBackend
from streamwise.vectors.scope import Backend, Scope
from streamwise.vectors.sqlite import FILE_NAME, SqliteVectorDatabase

DIMENSION = 384
K = 10
SCOPE = Scope("bench", "bench:random")
Vectors = npt.NDArray[np.float32]


def unit_vectors(count: int, seed: int) -> Vectors:
    rows = np.random.default_rng(seed).standard_normal((count, DIMENSION)).astype(np.float32)
    unit: Vectors = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit


async def fill(backend: Backend, vectors: Vectors, batch: int = 5000) -> float:
    started = time.perf_counter()
    for start in range(0, len(vectors), batch):
        chunk = vectors[start : start + batch]
        ids = [str(start + i) for i in range(len(chunk))]
        await backend.add(SCOPE, ids, [Document(entry_id) for entry_id in ids], chunk.tolist())
    return time.perf_counter() - started


async def timed_searches(backend: Backend, vectors: Vectors, queries: Vectors) -> dict[str, Any]:
    await backend.search(SCOPE, queries[0].tolist(), K)  # warm: threads, connections, page cache
    latencies: list[float] = []
    cpu: list[float] = []
    answers: list[set[int]] = []
    for query in queries:
        as_list = query.tolist()
        started, started_cpu = time.perf_counter(), time.process_time()
        found = await backend.search(SCOPE, as_list, K)
        latencies.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        answers.append({int(item.document.page_content) for item in found})
    # Checked after the timing, and without BLAS: its threads spin for a while after each product,
    # taking the cores from the searches being timed.
    exact = all(
        answer == set(np.argsort(-np.einsum("ij,j->i", vectors, query), kind="stable")[:K].tolist())
        for answer, query in zip(answers, queries, strict=True)
    )
    ordered = sorted(latencies)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        # CPU time of this process per search: what the search costs, whatever else the machine runs.
        "cpu_median_ms": round(statistics.median(cpu) * 1000, 2),
        "queries": len(ordered),
        "exact": exact,
    }


async def bench(sizes: list[int], query_count: int, folder: Path) -> dict[str, Any]:
    queries = unit_vectors(query_count, seed=1)
    results: dict[str, Any] = {"dimension": DIMENSION, "k": K, "sizes": {}}
    database = SqliteVectorDatabase(folder / "vectors" / FILE_NAME)
    data = {size: unit_vectors(size, seed=size) for size in sizes}
    makers: dict[str, Callable[[int], Backend]] = {
        "embedded": lambda size: database.namespace(f"bench/{size}"),
        "memory": lambda size: MemoryBackend(),
        "faiss": lambda size: FaissFolderBackend(folder / "faiss" / str(size)),
    }
    try:
        for size in sizes:
            row: dict[str, Any] = {}
            for name, make in makers.items():
                backend = make(size)
                # Faiss saves the whole index after every add: one add, as an upsert of one batch would.
                fill_seconds = await fill(backend, data[size], batch=size if name == "faiss" else 5000)
                row[name] = {
                    "fill_s": round(fill_seconds, 2),
                    **await timed_searches(backend, data[size], queries),
                }
                if name != "embedded":
                    await backend.close()
            results["sizes"][str(size)] = row
        # The smallest namespace again, now that every size is in the same file beside it.
        smallest = min(sizes)
        results["embedded_beside_larger_namespaces"] = await timed_searches(
            database.namespace(f"bench/{smallest}"), data[smallest], queries
        )
        files = (folder / "vectors").glob(f"{FILE_NAME}*")  # the database and its write-ahead log
        results["embedded_file_mb"] = round(sum(path.stat().st_size for path in files) / 2**20, 1)
    finally:
        await database.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-vectors-") as folder:
        results = asyncio.run(bench(sizes, args.queries, Path(folder)))
    results["load_average_1min"] = os.getloadavg()[0]  # other work on the machine skews wall times
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
