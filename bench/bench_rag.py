"""Streamwise's retrieval (RAG) targets, measured end to end; a section of bench/results.md.

    .venv/bin/python bench/run.py               # the whole benchmark, this section included
    .venv/bin/python bench/run.py --skip-rag    # without it
    .venv/bin/python bench/bench_rag.py [--quick]   # this section alone: JSON on stdout

Servers are `streamwise start` subprocesses (fresh data dirs), the stub is tests/support/openai_stub.py;
the embedding model's own rate and the retrieval timings come from fresh child processes
(bench/rag_parts.py), as bench_embeddings.py and bench_vectors.py measure them. The corpus is
paragraphs of at most 1,000 characters, one blank line apart, so the flows' recursive splitter
(chunkSize 1000, overlap 0) cuts exactly one chunk per paragraph; the child checks that it does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:  # `python bench/bench_rag.py` puts only bench/ on the path
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import uvloop  # noqa: E402
from bench_embeddings import labelled  # noqa: E402
from bench_http import Pool, Target, stream_once  # noqa: E402
from bench_procs import HOST, Proc, start_server, start_stub, stop  # noqa: E402
from rag_parts import (  # noqa: E402
    TIMEOUT,
    checked,
    child,
    create,
    local_embeddings,
    log,
    ms,
    noted,
    prediction,
    quiet,
    rag_flow,
    rss_kib,
    run_cli,
    spread,
    stub_embeddings,
    stub_rate,
    upsert,
    write_big,
    write_corpus,
)
from tests.support.flows import chain_flow, llm_chain_flow, openai_model  # noqa: E402

TARGETS: dict[str, dict[str, float]] = {
    "ingest_vs_model": {"target": 0.9},  # chunks/s through ingest / the model's own rate
    "memory_growth_vs_file": {"target": 2.0},  # peak RSS growth / file size, 50 MB text file
    "under_ingest_ratio": {"target": 3.0},  # first token, 2000 tokens: with a local ingest / without
    "search_100k_ms": {"target": 50.0},  # median search at 100,000 chunks
    "rag_added_slack_ms": {"target": 5.0},  # added first-token time beyond embed + search
}


@dataclass(frozen=True)
class RagPlan:
    quick: bool
    local_chunks: int  # localEmbeddings: ingest vs the model's own rate
    load_chunks: int  # the local ingest that runs while another chatflow streams
    corpus_chunks: int  # the RAG chatflow's documents
    stub_chunks: int  # openAIEmbeddings at the stub
    big_bytes: int  # the text file for the memory figure
    sizes: tuple[int, ...]  # retrieval: chunks in the store
    queries: int
    rounds: int  # alternating runs of the streaming comparisons
    ingest_rounds: int  # target 1: rounds of the model alone, the CLI and the route

    @classmethod
    def make(cls, quick: bool) -> RagPlan:
        if quick:
            return cls(True, 64, 160, 32, 1_000, 5_000_000, (10_000,), 15, 8, 1)
        return cls(False, 200, 400, 64, 10_000, 50_000_000, (10_000, 100_000), 60, 25, 2)


# phases --------------------------------------------------------------------------------------------


async def ingest_local(
    server: Proc, client: httpx.AsyncClient, base: str, path: Path, data: Path, plan: RagPlan, wait: float
) -> dict[str, Any]:
    """Target 1, localEmbeddings. Each round: the model alone in a fresh process (loaded, then one pass
    as a fresh CLI makes it, then a warm pass as a running server makes it), `streamwise ingest`, and
    the upsert route, in an order that turns with the round; each ingest is paired with its round's
    direct figure, so noise that drifts between rounds cancels."""
    pids = (server.pid,)
    rounds: list[dict[str, Any]] = []
    for number in range(plan.ingest_rounds):
        await quiet(min(wait, 30.0))
        ids = {
            way: await create(client, f"rag-local-{way}-{number}", rag_flow(local_embeddings(), base))
            for way in ("cli", "route")
        }
        steps = ["direct", "cli", "route"]
        figures: dict[str, Any] = {}
        for step in steps if number % 2 == 0 else reversed(steps):
            log(f"round {number + 1}/{plan.ingest_rounds}: {step} ({path.name}, localEmbeddings)")
            if step == "direct":
                work: Awaitable[dict[str, Any]] = asyncio.to_thread(child, "embed", str(path), "1")
            elif step == "cli":
                work = asyncio.to_thread(run_cli, ids["cli"], path, data, data.parent)
            else:
                work = upsert(client, ids["route"], path)
            figures[step] = await noted(pids, work)
        direct = figures["direct"]
        figures["cli_ratio"] = round(figures["cli"]["chunks_per_s"] / direct["cold_rate"], 3)
        figures["cli_vs_warm"] = round(figures["cli"]["chunks_per_s"] / direct["warm_rate"], 3)
        figures["route_ratio"] = round(figures["route"]["chunks_per_s"] / direct["warm_rate"], 3)
        same = direct["matches_paragraphs"] and figures["cli"]["chunks"] == figures["route"]["chunks"]
        figures["same_chunks"] = same and direct["chunks"] == figures["cli"]["chunks"]
        rounds.append(figures)
    target = TARGETS["ingest_vs_model"]["target"]
    same = all(r["same_chunks"] for r in rounds)
    route = statistics.median(r["route_ratio"] for r in rounds)
    cli = statistics.median(r["cli_ratio"] for r in rounds)
    return {
        "rounds": rounds,
        "chunks": rounds[0]["direct"]["chunks"],
        "same_chunks": same,
        "route_ratio": round(route, 3),
        "cli_ratio": round(cli, 3),
        "target": target,
        "route_pass": same and route >= target,
        "cli_pass": same and cli >= target,
    }


async def ingest_stub(
    server: Proc, stub: Proc, client: httpx.AsyncClient, ids: dict[str, str], path: Path, data: Path
) -> dict[str, Any]:
    """openAIEmbeddings at the stub: what Streamwise's own ingest path costs, beside the stub's rate."""
    log(f"{path.name}: the stub alone, the upsert route, streamwise ingest (openAIEmbeddings at the stub)")
    stub_alone = await stub_rate(stub, path)
    route = await upsert(client, ids["stub-route"], path)
    cli = await asyncio.to_thread(run_cli, ids["stub-cli"], path, data, data.parent)
    return {
        "stub": stub_alone,
        "route": route,
        "cli": cli,
        "route_vs_stub": round(route["chunks_per_s"] / stub_alone["chunks_per_s"], 3),
        "cli_vs_stub": round(cli["chunks_per_s"] / stub_alone["chunks_per_s"], 3),
    }


async def _round(pool: Pool, short: Target, long: Target, flip: bool) -> tuple[float, float]:
    """One 20-token answer (its first token) and one 2000-token answer (its whole time), in ms."""
    order = [(short, 20), (long, 2000)]
    times: dict[int, float] = {}
    for target, tokens in reversed(order) if flip else order:
        result = checked(await stream_once(pool, target, TIMEOUT), tokens, f"llmChain {tokens} tokens")
        times[tokens] = ms(result.ttft if tokens == 20 else result.total)
    return times[20], times[2000]


async def under_ingest(
    server: Proc, client: httpx.AsyncClient, ids: dict[str, str], path: Path, rounds: int
) -> dict[str, Any]:
    """Target 3: another chatflow's first token and 2000-token answer while a local ingest runs."""
    pool = Pool(HOST, int(server.url.rsplit(":", 1)[1]))
    short = prediction(server, ids["llm-20"], "Hello", False)
    long = prediction(server, ids["llm-2000"], "Hello", False)
    try:
        for i in range(3):
            await _round(pool, short, long, bool(i % 2))
        log(f"llmChain at the stub: {rounds} rounds alone, {rounds} during a local ingest, {rounds} alone")
        before = [await _round(pool, short, long, bool(i % 2)) for i in range(rounds)]
        ingest = asyncio.create_task(upsert(client, ids["under-load"], path))
        await asyncio.sleep(1.0)  # the ingest is under way: upload read, model busy
        during: list[tuple[float, float]] = []
        while len(during) < rounds and not ingest.done():
            measured = await _round(pool, short, long, bool(len(during) % 2))
            if not ingest.done():
                during.append(measured)
        still_running = not ingest.done()
        ingested = await ingest
        after = [await _round(pool, short, long, bool(i % 2)) for i in range(rounds)]
    finally:
        pool.close()
    alone = before + after
    if not during:
        return {"error": "the ingest ended before a round could be measured", "ingest": ingested}
    ttft_alone, ttft_during = spread([a for a, _ in alone]), spread([a for a, _ in during])
    long_alone, long_during = spread([b for _, b in alone]), spread([b for _, b in during])
    ttft_ratio = ttft_during["median"] / ttft_alone["median"]
    long_ratio = long_during["median"] / long_alone["median"]
    target = TARGETS["under_ingest_ratio"]["target"]
    return {
        "ingest": ingested,
        "ingest_outlasted_rounds": still_running,
        "ttft_alone_ms": ttft_alone,
        "ttft_during_ms": ttft_during,
        "long_alone_ms": long_alone,
        "long_during_ms": long_during,
        "ttft_ratio": round(ttft_ratio, 2),
        "long_ratio": round(long_ratio, 2),
        "target": target,
        "pass": still_running and len(during) == rounds and max(ttft_ratio, long_ratio) <= target,
    }


async def rag_first_token(server: Proc, ids: dict[str, str], rounds: int) -> dict[str, Any]:
    """Target 5: first-token time of the RAG chatflow and of the same model without retrieval."""
    questions = [q["query"] for q in labelled()["queries"]]
    flows = {
        "rag": (ids["rag"], True),
        "conversation": (ids["conversation"], True),
        "llm": (ids["llm-20"], False),
    }
    pool = Pool(HOST, int(server.url.rsplit(":", 1)[1]))
    times: dict[str, list[float]] = {name: [] for name in flows}
    try:
        first = prediction(server, ids["rag"], questions[0], True)
        kept = checked(await stream_once(pool, replace(first, keep_body=True), TIMEOUT), 20, "rag")
        with_sources = b'"event":"sourceDocuments"' in kept.body
        for warm in range(3 + rounds):
            names = list(flows)
            names = names[warm % 3 :] + names[: warm % 3]  # each flow goes first, second, third in turn
            for name in names:
                chatflow_id, chat = flows[name]
                target = prediction(server, chatflow_id, questions[warm % len(questions)], chat)
                result = checked(await stream_once(pool, target, TIMEOUT), 20, name)
                if warm >= 3:
                    times[name].append(ms(result.ttft))
    finally:
        pool.close()
    return {"ttft_ms": {name: spread(values) for name, values in times.items()}, "sources_sent": with_sources}


async def bounded_memory(
    stub: Proc, workdir: Path, small: Path, path: Path, size: int, paragraphs_in_file: int
) -> dict[str, Any]:
    """Target 2: a fresh server's RSS at idle, after a small upsert (its one-time costs: imports,
    threads, the store), during a big one (sampled every 20 ms, and VmHWM) and after it."""
    data = workdir / "data-rag-memory"
    data.mkdir()
    server = start_server(data, workdir, env_extra={"STREAMWISE_LOG_LEVEL": "error"})
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=900) as client:
            flow = rag_flow(stub_embeddings(stub.url + "/v1"), stub.url)
            first, big = await create(client, "rag-small", flow), await create(client, "rag-big", flow)
            await asyncio.sleep(1.0)
            idle = rss_kib(server.pid)
            await upsert(client, first, small)
            await asyncio.sleep(1.0)
            before = rss_kib(server.pid)
            timeline: list[tuple[float, dict[str, int]]] = []  # (seconds into the upsert, KiB)
            done = asyncio.Event()
            started = time.perf_counter()

            async def sample() -> None:
                while not done.is_set():
                    timeline.append((time.perf_counter() - started, rss_kib(server.pid)))
                    await asyncio.sleep(0.02)

            sampler = asyncio.create_task(sample())
            log(f"upsert of a {size / 1e6:.0f} MB text file (openAIEmbeddings at the stub)")
            try:
                ingested = await noted((server.pid, stub.pid), upsert(client, big, path))
            finally:
                done.set()
                await sampler
            await asyncio.sleep(1.0)
            after = rss_kib(server.pid)
    finally:
        stop(server)
    file_mib = size / 2**20
    seconds = ingested["seconds"]

    def mib(kib: float) -> float:
        return round(kib / 1024, 1)

    def peak(key: str, until: float = float("inf")) -> int:
        return max((m[key] for t, m in timeline if t <= until), default=0)

    top = max([after["VmHWM"], peak("VmRSS")])  # VmHWM: the peak between two samples too
    growth = mib(top - before["VmRSS"])
    target = TARGETS["memory_growth_vs_file"]["target"]
    return {
        **ingested,
        "file_bytes": size,
        "file_mib": round(file_mib, 1),
        "paragraphs": paragraphs_in_file,
        "samples": len(timeline),
        # VmRSS, and its anonymous (heap) and file-backed parts: idle, before the big upsert, the
        # highest sample during it, after it.
        **{
            f"{part}_mib": {
                "idle": mib(idle[key]),
                "before": mib(before[key]),
                "peak": mib(top if key == "VmRSS" else peak(key)),
                "after": mib(after[key]),
            }
            for part, key in (("rss", "VmRSS"), ("anon", "RssAnon"), ("mapped", "RssFile"))
        },
        # The highest VmRSS / RssAnon sample by a quarter, half, ... of the upsert's time.
        "course_mib": {
            f"{share:.0%}": [mib(peak("VmRSS", share * seconds)), mib(peak("RssAnon", share * seconds))]
            for share in (0.25, 0.5, 0.75, 0.9, 1.0)
        },
        "growth_mib": growth,
        "anon_growth_mib": mib(peak("RssAnon") - before["RssAnon"]),
        "growth_vs_file": round(growth / file_mib, 2),
        "target": target,
        "pass": ingested["chunks"] == paragraphs_in_file and growth / file_mib <= target,
    }


# the run -------------------------------------------------------------------------------------------


async def rag_bench(stub: Proc, workdir: Path, quick: bool, wait: float = 0.0) -> dict[str, Any]:
    """Every RAG figure, on servers of its own (fresh data dirs), with `stub` as the model server."""
    plan = RagPlan.make(quick)
    folder = workdir / "rag"
    folder.mkdir()
    files = {
        "local": write_corpus(folder / f"local-{plan.local_chunks}.txt", plan.local_chunks),
        "load": write_corpus(folder / f"load-{plan.load_chunks}.txt", plan.load_chunks, 100_000),
        "corpus": write_corpus(folder / "corpus.txt", plan.corpus_chunks, 200_000),
        "stub": write_corpus(folder / f"stub-{plan.stub_chunks}.txt", plan.stub_chunks, 300_000),
    }
    big, big_count, big_size = write_big(folder / "big.txt", plan.big_bytes)
    base = stub.url + "/v1"
    data = workdir / "data-rag"
    data.mkdir()
    results: dict[str, Any] = {"plan": {**plan.__dict__, "sizes": list(plan.sizes)}, "targets": TARGETS}
    server = start_server(data, workdir)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=600) as client:
            flows = {
                "under-load": rag_flow(local_embeddings(), base),
                "rag": rag_flow(local_embeddings(), base),
                "stub-route": rag_flow(stub_embeddings(base), base),
                "stub-cli": rag_flow(stub_embeddings(base), base),
                "conversation": chain_flow(
                    openai_model(base, modelName="stub?tokens=20"), memory="bufferMemory"
                ),
                "llm-20": llm_chain_flow(openai_model(base, modelName="stub?tokens=20")),
                "llm-2000": llm_chain_flow(openai_model(base, modelName="stub?tokens=2000")),
            }
            ids = {name: await create(client, f"rag-{name}", flow) for name, flow in flows.items()}
            pids = (server.pid, stub.pid)
            log("the RAG chatflow's corpus through the upsert route (the server loads the model)")
            results["corpus_upsert"] = await upsert(client, ids["rag"], files["corpus"])
            results["local"] = await ingest_local(server, client, base, files["local"], data, plan, wait)
            results["under_ingest"] = await noted(
                pids, under_ingest(server, client, ids, files["load"], plan.rounds)
            )
            log(f"first token with and without retrieval: {plan.rounds} rounds of 3 chatflows")
            results["first_token"] = await noted(pids, rag_first_token(server, ids, plan.rounds))
            results["stub"] = await noted(pids, ingest_stub(server, stub, client, ids, files["stub"], data))
    finally:
        stop(server)
    await quiet(wait)
    sizes = [plan.corpus_chunks, *plan.sizes]
    shown = ", ".join(f"{s:,}" for s in sizes)
    log(f"retrieval: question embedding + search at {shown} chunks (a fresh process)")
    args = [str(folder / "vectors"), str(plan.queries), *map(str, sizes)]
    results["retrieval"] = await noted((), asyncio.to_thread(child, "retrieval", *args))
    results["memory"] = await bounded_memory(stub, workdir, files["corpus"], big, big_size, big_count)
    results["verdicts"] = verdicts(results, plan)
    return results


def verdicts(r: dict[str, Any], plan: RagPlan) -> dict[str, Any]:
    """The targets that depend on figures of several phases."""
    retrieval, first = r["retrieval"]["sizes"], r["first_token"]["ttft_ms"]
    small = retrieval[str(plan.corpus_chunks)]
    budget = small["embed_ms"]["median"] + small["search_ms"]["median"]
    slack = TARGETS["rag_added_slack_ms"]["target"]
    added = {base: first["rag"]["median"] - first[base]["median"] for base in ("conversation", "llm")}
    largest = retrieval.get("100000")
    search_target = TARGETS["search_100k_ms"]["target"]
    return {
        "rag_added_ms": {base: round(value, 3) for base, value in added.items()},
        "rag_budget_ms": round(budget + slack, 3),
        "rag_pass": added["conversation"] <= budget + slack,
        "rag_pass_vs_llm": added["llm"] <= budget + slack,
        "search_100k_ms": None if largest is None else largest["search_ms"]["median"],
        "search_pass": None if largest is None else largest["search_ms"]["median"] <= search_target,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S", help="wait for a quiet machine")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="streamwise-bench-rag-"))
    try:
        stub = start_stub(2000, workdir)
        try:
            result = uvloop.run(rag_bench(stub, workdir, args.quick, args.wait_quiet))
        finally:
            stop(stub)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
