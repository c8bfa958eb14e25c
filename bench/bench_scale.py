"""Scale-out (worker mode): API nodes and `streamwise worker`s sharing PostgreSQL and Redis, against
one in-process server on PostgreSQL, all in the same run.

Three setups serve the same chatOpenAI → llmChain flow, pointed at the OpenAI stub:
  - `in-process`: one `streamwise start` on PostgreSQL, no Redis (the baseline);
  - `1 API + 2 workers`: `streamwise start --role api` (node A) and two `streamwise worker
    --concurrency 50`, over Redis;
  - `2 API + 2 workers`: nodes A and B with the same two workers; the client spreads its streams
    over both nodes round-robin.
All processes run at once (node B idles while the second setup is measured), so the sides can be
interleaved: every round of the first-token runs and of the concurrent loads goes through the
setups in a rotating order. The first-token delay is read from sequential 20-token answers after a
warm-up (median and p95), with the stub read directly for reference; throughput is token events/s of
50 and 200 concurrent 2000-token streams, every stream checked complete.

Redis memory per finished run: `INFO memory` used_memory before and after 1,000 20-token runs through
node A (50 at a time), the events still held for the resume window (STREAMWISE_RESUME_SECONDS,
60 s); the keys under the run's prefix are also measured one by one (`MEMORY USAGE`), which
other users of a shared Redis cannot skew. A second, small deployment (1 API + 1 worker, its own
database and prefix) runs with a 2-second resume window and checks that its runs' keys vanish.

Every process is started and stopped here, by its own pid; the throwaway databases are dropped and
every Redis key under the prefixes used is deleted at the end, however the run ends.

    .venv/bin/python bench/bench_scale.py [--quick] [--profile]   # prints JSON (starts its own stub)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:  # `python bench/bench_scale.py` puts only bench/ on the path
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
import uvloop  # noqa: E402
from bench_http import (  # noqa: E402
    FLOWISE,
    OPENAI,
    LoadResult,
    Pool,
    StreamResult,
    Target,
    post_json,
    request_on,
    stream_once,
    verify_stream,
)
from bench_procs import (  # noqa: E402
    HOST,
    PROFILE_RATE,
    CpuSnapshot,
    Proc,
    finish_profile,
    process_cpu,
    py_spy,
    start_profile,
    start_server,
    start_stub,
    stop,
    streamwise_command,
    streamwise_env,
    summarise_profile,
    wait_for_quiet,
)
from cryptography.fernet import Fernet  # noqa: E402
from tests.support.flows import llm_chain_flow, openai_model  # noqa: E402
from tests.support.openai_stub import expected_text  # noqa: E402
from tests.support.pg import postgres_test_database  # noqa: E402

LONG_TOKENS = 2000
SHORT_TOKENS = 20
QUESTION = {"question": "Hello", "streaming": True}
REDIS_URL = os.environ.get("STREAMWISE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
WORKERS = 2
WORKER_CONCURRENCY = 50
MEMORY_RUNS = 1000  # short runs whose keys Redis holds for the resume window
MEMORY_BATCH = 50  # of them at once
SHORT_RESUME_SECONDS = 2  # the second deployment's resume window
REQUEST_TIMEOUT = 30.0
TARGETS: dict[str, dict[str, float]] = {
    "scale_added_ttft_ms": {"target": 5.0},  # worker mode's first-token delay minus in-process
    "scale_share_50": {"target": 0.5},  # worker mode's token events/s over in-process, 50 streams
}
INPROC, ONE_API, TWO_API, STUB = "in-process", "1 API + 2 workers", "2 API + 2 workers", "stub direct"
WORKER_SETUPS = (ONE_API, TWO_API)


@dataclass(frozen=True)
class Plan:
    warmup: int  # rounds of one 2000- and one 20-token answer on every node
    ttft_runs: int  # sequential 20-token answers per setup
    repeats: tuple[tuple[int, int], ...]  # (concurrent streams, measured rounds)
    expiry_runs: int  # runs through the short-resume deployment
    profile_seconds: float

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(3, 20, ((50, 1), (200, 1)), 50, 3.0)
        return cls(8, 100, ((50, 5), (200, 3)), 200, 6.0)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# processes -----------------------------------------------------------------------------------------


def start_worker(data_dir: Path, workdir: Path, env_extra: dict[str, str], timeout: float = 30.0) -> Proc:
    """`streamwise worker --concurrency 50`, ready once it says it is taking runs."""
    env = streamwise_env(data_dir, env_extra)
    log_path = workdir / "worker.log"
    command = [*streamwise_command(), "worker", "--concurrency", str(WORKER_CONCURRENCY)]
    with log_path.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    proc = Proc("a Streamwise worker", process, "", log_path)
    deadline = time.monotonic() + timeout
    while "taking up to" not in proc.log_tail(50):
        if not proc.alive() or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"the worker did not start:\n{proc.log_tail()}")
        time.sleep(0.05)
    return proc


def _subdir(parent: Path, name: str) -> tuple[Path, Path]:
    """A process's own working directory (its log goes there) and data directory."""
    work = parent / name
    data = work / "data"
    data.mkdir(parents=True)
    return work, data


def _service_pids() -> dict[str, list[int]]:
    """Redis's and PostgreSQL's processes on this machine (part of what worker mode costs)."""
    found: dict[str, list[int]] = {"redis": [], "postgres": []}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as comm:
                name = comm.read().strip()
        except OSError:
            continue
        if name.startswith("redis-server"):
            found["redis"].append(int(entry))
        elif name.startswith("postgres"):
            found["postgres"].append(int(entry))
    return found


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


SERVICES = (
    "redis",
    "postgres",
)  # CpuMeter roles found afresh at each sample (a PostgreSQL process per connection)


@dataclass
class CpuMeter:
    """CPU seconds by role (the client, the stub, servers, workers, Redis, PostgreSQL) and of
    everything else on the machine, between `start` and `stop`, summed over several stretches."""

    roles: dict[str, list[int]]  # role → pids; SERVICES roles are looked up at each sample instead
    used: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    _before: tuple[CpuSnapshot, dict[str, dict[int, float]], float] | None = None

    def _sample(self) -> dict[str, dict[int, float]]:
        services = _service_pids()
        return {
            role: {pid: process_cpu(pid) for pid in (services[role] if role in SERVICES else pids)}
            for role, pids in self.roles.items()
        }

    def start(self) -> None:
        self._before = (CpuSnapshot.take(), self._sample(), _self_cpu())

    def stop(self) -> None:
        assert self._before is not None
        machine_before, roles_before, self_before = self._before
        machine_after, roles_after, self_after = CpuSnapshot.take(), self._sample(), _self_cpu()
        ours = self_after - self_before
        self.used["client"] = self.used.get("client", 0.0) + ours
        for role, after in roles_after.items():
            before = roles_before[role]
            # A process that started meanwhile counts whole; one that ended meanwhile is lost.
            spent = sum(max(0.0, value - before.get(pid, 0.0)) for pid, value in after.items())
            self.used[role] = self.used.get(role, 0.0) + spent
            ours += spent
        busy = machine_after.machine_busy - machine_before.machine_busy
        self.used["other"] = self.used.get("other", 0.0) + max(0.0, busy - ours)
        self.wall += machine_after.wall - machine_before.wall
        self._before = None

    @contextlib.contextmanager
    def measuring(self) -> Iterator[None]:
        self.start()
        try:
            yield
        finally:
            self.stop()

    def figures(self, token_events: int | None = None) -> dict[str, Any]:
        cores = os.cpu_count() or 1
        other = self.used.get("other", 0.0)
        out: dict[str, Any] = {
            "wall_s": round(self.wall, 3),
            "core_seconds": {role: round(value, 3) for role, value in self.used.items()},
            # As bench/run.py reports a phase's noise: CPU of processes that are not the benchmark's.
            "other_cpu": {
                "core_seconds": round(other, 2),
                "share_of_machine": round(other / (self.wall * cores), 3) if self.wall > 0 else 0.0,
            },
        }
        if token_events:
            out["us_per_token_event"] = {
                role: round(value * 1e6 / token_events, 2) for role, value in self.used.items()
            }
        return out


# the client's view ---------------------------------------------------------------------------------


@dataclass
class Node:
    """One HTTP endpoint (an in-process server or an API node) and the requests to send it."""

    name: str
    pool: Pool
    long: Target
    short: Target


@dataclass
class Setup:
    name: str
    nodes: list[Node]
    _turn: int = 0

    def next_node(self) -> Node:
        """Round-robin over the setup's nodes."""
        node = self.nodes[self._turn % len(self.nodes)]
        self._turn += 1
        return node

    def close(self) -> None:
        for node in self.nodes:
            node.pool.close()


async def create_chatflows(server: Proc, stub: Proc) -> tuple[str, str]:
    base = stub.url + "/v1"
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        for name, model in (
            ("scale-2000", openai_model(base)),
            ("scale-20", openai_model(base, modelName=f"stub?tokens={SHORT_TOKENS}")),
        ):
            response = await client.post(
                "/api/v1/chatflows", json={"name": name, "flowData": llm_chain_flow(model)}
            )
            if response.status_code != 200:
                raise RuntimeError(
                    f"creating chatflow {name!r} failed: {response.status_code} {response.text}"
                )
            ids.append(response.json()["id"])
    return ids[0], ids[1]


def make_node(name: str, server: Proc, long_id: str, short_id: str) -> Node:
    port = _port(server.url)
    return Node(
        name,
        Pool(HOST, port),
        post_json(HOST, port, f"/api/v1/prediction/{long_id}", QUESTION, FLOWISE),
        post_json(HOST, port, f"/api/v1/prediction/{short_id}", QUESTION, FLOWISE),
    )


def _ok(result: StreamResult, tokens: int) -> bool:
    return result.ok and result.tokens == tokens and result.first_token is not None


def _checked(result: StreamResult, who: str, tokens: int) -> StreamResult:
    if not _ok(result, tokens):
        raise RuntimeError(
            f"{who}: a {tokens}-token stream failed: status {result.status}, {result.tokens} token "
            f"events, end last: {result.end_last}, error: {result.error}"
        )
    return result


async def verify_node(node: Node, setup: str) -> list[str]:
    """One answer of each length read in full and checked (frames, order, the joined text)."""
    problems: list[str] = []
    for target, tokens in ((node.long, LONG_TOKENS), (node.short, SHORT_TOKENS)):
        result = await stream_once(node.pool, replace(target, keep_body=True), REQUEST_TIMEOUT)
        problems += [
            f"{setup}, {node.name}, {tokens} tokens: {p}"
            for p in verify_stream(result, FLOWISE, expected_text(tokens))
        ]
    return problems


async def stub_short_target(stub: Proc) -> Target:
    """The body Streamwise sent the stub last (a 20-token answer), to send it directly."""
    async with httpx.AsyncClient(timeout=5) as client:
        records = (await client.get(stub.url + "/_stub/requests")).json()
        await client.delete(stub.url + "/_stub/requests")
    if not records:
        raise RuntimeError("Streamwise sent nothing to the stub")
    return post_json(HOST, _port(stub.url), "/v1/chat/completions", records[-1]["body"], OPENAI)


async def clear_stub(stub: Proc) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        await client.delete(stub.url + "/_stub/requests")


async def spread_load(nodes: list[Node], streams: int, timeout: float) -> LoadResult:
    """`streams` 2000-token requests at once, stream i to node i mod n, each on its own open
    connection: every connection is acquired before the first request is written."""
    conns = [await node.pool.acquire_many(len(range(i, streams, len(nodes)))) for i, node in enumerate(nodes)]
    futures = {
        (i, k): conns[i][k].start(nodes[i].long)
        for k in range(len(conns[0]))
        for i in range(len(nodes))
        if k < len(conns[i])
    }  # written back to back, alternating nodes, before any read
    done, _ = await asyncio.wait(futures.values(), timeout=timeout)
    results: list[StreamResult] = []
    for (i, k), future in futures.items():
        conn = conns[i][k]
        if future in done:
            result = future.result()
        else:
            future.cancel()
            if conn.transport is not None:
                conn.transport.close()
            result = StreamResult(error=f"no complete answer within {timeout} s")
        results.append(result)
        nodes[i].pool.release(conn, result)
    start = min(r.sent for r in results)
    ends = [r.ended for r in results if r.ended is not None]
    return LoadResult(streams, (max(ends) - start) if ends else float("nan"), results)


def load_figures(load: LoadResult, tokens: int) -> dict[str, Any]:
    ttfts = sorted(r.ttft for r in load.results if r.first_token is not None)
    complete = sum(1 for r in load.results if _ok(r, tokens))
    return {
        "streams": load.streams,
        "events_per_second": round(load.events_per_second),
        "wall_s": round(load.wall, 3),
        "token_events": load.tokens,
        "token_events_expected": load.streams * tokens,
        "complete_streams": complete,
        "ttft_median_s": round(statistics.median(ttfts), 3) if ttfts else None,
        "ttft_max_s": round(ttfts[-1], 3) if ttfts else None,
        "errors": sorted({r.error for r in load.results if r.error})[:3],
    }


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = statistics.quantiles(ordered, n=20, method="inclusive")[18] if len(ordered) > 1 else ordered[0]
    return {
        "median": round(statistics.median(ordered), 3),
        "p95": round(p95, 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
        "runs": len(ordered),
    }


async def quiet(seconds: float) -> float | None:
    """Wait up to `seconds` for other processes to leave the CPUs alone; their share seen last."""
    if seconds <= 0:
        return None
    share = await asyncio.to_thread(wait_for_quiet, seconds)
    log(f"  (other processes' share of the machine: {share:.0%})")
    return share


def rotated(items: list[Any], round_: int) -> list[Any]:
    shift = round_ % len(items)
    return items[shift:] + items[:shift]


# phases --------------------------------------------------------------------------------------------


async def first_token(setups: list[Setup], stub_pool: Pool, stub_short: Target, plan: Plan) -> dict[str, Any]:
    """Sequential 20-token answers, one per setup (and one from the stub directly) per round, in a
    rotating order; the first-token delay of each, in ms."""
    log(f"scale-out: first token, {plan.ttft_runs} rounds of sequential 20-token answers over the setups")
    ttft: dict[str, list[float]] = {STUB: [], **{s.name: [] for s in setups}}
    total: dict[str, list[float]] = {name: [] for name in ttft}
    sides: list[Setup | None] = [None, *setups]
    for round_ in range(plan.ttft_runs):
        for side in rotated(sides, round_):
            if side is None:
                result = _checked(
                    await stream_once(stub_pool, stub_short, REQUEST_TIMEOUT), STUB, SHORT_TOKENS
                )
                name = STUB
            else:
                node = side.next_node()
                result = await stream_once(node.pool, node.short, REQUEST_TIMEOUT)
                _checked(result, f"{side.name} ({node.name})", SHORT_TOKENS)
                name = side.name
            ttft[name].append(result.ttft * 1000)
            total[name].append(result.total * 1000)
    out: dict[str, Any] = {
        name: {"ttft_ms": spread(ttft[name]), "total_ms": spread(total[name])} for name in ttft
    }
    base = out[INPROC]["ttft_ms"]
    target = TARGETS["scale_added_ttft_ms"]["target"]
    for name in WORKER_SETUPS:
        mine = out[name]["ttft_ms"]
        out[name]["added_ms"] = round(mine["median"] - base["median"], 3)
        out[name]["added_p95_ms"] = round(mine["p95"] - base["p95"], 3)
        out[name]["pass"] = out[name]["added_ms"] <= target
    out["target_ms"] = target
    return out


async def throughput(
    setups: list[Setup], meter_roles: dict[str, list[int]], plan: Plan, wait_quiet: float
) -> dict[str, Any]:
    """Per level: one warm-up load per setup, then rounds of one load per setup in a rotating order.
    The share is each round's worker-mode events/s over that round's in-process events/s."""
    levels: dict[str, Any] = {}
    shares: dict[str, float | None] = {}  # other processes' share of the machine seen before each level
    for streams, rounds in plan.repeats:
        timeout = max(60.0, streams * 0.5)
        log(f"scale-out: {streams} concurrent 2000-token streams, 1 warm-up + {rounds} interleaved rounds")
        for setup in setups:
            await spread_load(setup.nodes, streams, timeout)
        quiet_share = await quiet(wait_quiet)
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in setups}
        meters = {s.name: CpuMeter(meter_roles) for s in setups}  # every role, so "other" is others
        for round_ in range(rounds):
            for setup in rotated(setups, round_):
                with meters[setup.name].measuring():
                    load = await spread_load(setup.nodes, streams, timeout)
                runs[setup.name].append(load_figures(load, LONG_TOKENS))
        level: dict[str, Any] = {}
        for setup in setups:
            figures = runs[setup.name]
            middle = sorted(figures, key=lambda r: r["events_per_second"])[len(figures) // 2]
            events = sum(r["token_events"] for r in figures)
            level[setup.name] = {
                **middle,
                "repeats": [r["events_per_second"] for r in figures],
                "repeats_ttft_max_s": [r["ttft_max_s"] for r in figures],
                "all_complete": all(r["complete_streams"] == streams for r in figures),
                "incomplete_streams": sum(streams - r["complete_streams"] for r in figures),
                "errors_all": sorted({e for r in figures for e in r["errors"]})[:3],
                "cpu": meters[setup.name].figures(events),
            }
        base = runs[INPROC]
        for name in WORKER_SETUPS:
            paired = [
                w["events_per_second"] / b["events_per_second"]
                for w, b in zip(runs[name], base, strict=True)
                if b["events_per_second"] > 0
            ]
            level[name]["share"] = round(statistics.median(paired), 3) if paired else None
            level[name]["share_rounds"] = [round(v, 3) for v in paired]
            level[name]["share_of_medians"] = round(
                level[name]["events_per_second"] / max(1, level[INPROC]["events_per_second"]), 3
            )
        levels[str(streams)] = level
        shares[str(streams)] = quiet_share
    target = TARGETS["scale_share_50"]["target"]
    fifty = levels.get("50", {})
    for name in WORKER_SETUPS:
        if name in fifty:
            complete = fifty[name]["all_complete"] and fifty[INPROC]["all_complete"]
            fifty[name]["pass"] = complete and (fifty[name]["share"] or 0.0) >= target
    return {"levels": levels, "target_share_50": target, "quiet_share_before": shares}


async def _prefix_keys(client: aioredis.Redis, prefix: str) -> set[str]:
    return {key.decode() async for key in client.scan_iter(match=f"{prefix}:*", count=1000)}


async def _key_bytes(client: aioredis.Redis, keys: set[str]) -> int:
    total = 0
    ordered = sorted(keys)
    for start in range(0, len(ordered), 500):
        pipe = client.pipeline(transaction=False)
        for key in ordered[start : start + 500]:
            pipe.memory_usage(key, samples=0)
        total += sum(int(v) for v in await pipe.execute() if v is not None)
    return total


async def _used_memory(client: aioredis.Redis) -> int:
    info = await client.info("memory")
    return int(info["used_memory"])


def _key_kinds(keys: set[str], prefix: str) -> dict[str, int]:
    """`<prefix>:run:{id}:events` → counted as `run:*:events`; other keys by their own name."""
    kinds: dict[str, int] = {}
    for key in keys:
        rest = key[len(prefix) + 1 :]
        if rest.startswith("run:{") and "}:" in rest:
            rest = "run:*:" + rest.split("}:", 1)[1]
        kinds[rest] = kinds.get(rest, 0) + 1
    return dict(sorted(kinds.items()))


async def short_runs(node: Node, runs: int) -> int:
    """`runs` 20-token answers, MEMORY_BATCH at a time; how many were complete."""
    complete = 0
    for start in range(0, runs, MEMORY_BATCH):
        batch = min(MEMORY_BATCH, runs - start)
        conns = await node.pool.acquire_many(batch)
        results = await asyncio.gather(*(request_on(c, node.short, REQUEST_TIMEOUT) for c in conns))
        for conn, result in zip(conns, results, strict=True):
            node.pool.release(conn, result)
            complete += _ok(result, SHORT_TOKENS)
    return complete


async def redis_memory(client: aioredis.Redis, prefix: str, node: Node, runs: int) -> dict[str, Any]:
    """Redis's memory before and after `runs` short runs whose events it holds for the resume window."""
    log(f"scale-out: Redis memory, {runs:,} 20-token runs through node A ({MEMORY_BATCH} at a time)")
    await asyncio.sleep(0.5)  # let the workers finish writing the earlier runs' last events
    keys_before = await _prefix_keys(client, prefix)
    used_before = await _used_memory(client)
    started = time.monotonic()
    complete = await short_runs(node, runs)
    seconds = time.monotonic() - started
    await asyncio.sleep(0.5)  # the last ends, the acknowledgements and TTLs
    used_after = await _used_memory(client)
    keys_after = await _prefix_keys(client, prefix)
    new = keys_after - keys_before
    new_bytes = await _key_bytes(client, new)
    delta = used_after - used_before
    return {
        "runs": runs,
        "complete": complete,
        "seconds": round(seconds, 2),
        "used_memory_before": used_before,
        "used_memory_after": used_after,
        "used_memory_bytes_per_run": round(delta / runs),
        "used_memory_mib_per_1000": round(delta / runs * 1000 / 1048576, 3),
        "keys_new": len(new),
        "keys_new_per_run": round(len(new) / runs, 2),
        "keys_expired_meanwhile": len(keys_before - keys_after),
        "key_kinds_new": _key_kinds(new, prefix),
        "memory_usage_bytes_per_run": round(new_bytes / runs),
        "memory_usage_mib_per_1000": round(new_bytes / runs * 1000 / 1048576, 3),
    }


async def expiry_check(
    client: aioredis.Redis, prefix: str, node: Node, runs: int, resume_seconds: float
) -> dict[str, Any]:
    """Runs through a deployment with a short resume window: do their keys vanish after it?"""
    log(f"scale-out: {runs} runs with a {resume_seconds:g}-second resume window; do their keys vanish?")
    complete = await short_runs(node, runs)
    ended = time.monotonic()
    right_after = await _prefix_keys(client, prefix)
    remaining = right_after
    gone_after: float | None = None
    deadline = ended + resume_seconds + 20.0
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        remaining = await _prefix_keys(client, prefix)
        if not any(":run:" in key for key in remaining):
            gone_after = time.monotonic() - ended
            break
    return {
        "runs": runs,
        "complete": complete,
        "resume_seconds": resume_seconds,
        "keys_right_after": len(right_after),
        "key_kinds_right_after": _key_kinds(right_after, prefix),
        "run_keys_gone_after_s": None if gone_after is None else round(gone_after, 2),
        "keys_left": _key_kinds(remaining, prefix),
        "vanished": gone_after is not None,
    }


async def delete_prefix(client: aioredis.Redis, prefix: str) -> int:
    deleted = 0
    batch: list[str] = []
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key.decode())
        if len(batch) >= 500:
            deleted += int(await client.delete(*batch))
            batch = []
    if batch:
        deleted += int(await client.delete(*batch))
    return deleted


async def profile_nodes(
    procs: dict[str, Proc], workdir: Path, seconds: float, workload: Callable[[], Awaitable[object]]
) -> list[dict[str, Any]]:
    """py-spy on each of `procs` at once while `workload` repeats for about `seconds`."""
    if py_spy() is None:
        return [{"error": "py-spy is not installed (.venv/bin/pip install py-spy)"}]
    spies = {}
    for name, proc in procs.items():
        out = workdir / f"profile-scale-{name.replace(' ', '-')}.txt"
        spy = start_profile(proc.pid, out, seconds + 1.0)
        assert spy is not None
        spies[name] = (spy, out)
    rounds = 0
    try:
        await asyncio.sleep(0.5)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await workload()
            rounds += 1
    finally:
        errors = {
            name: await asyncio.to_thread(finish_profile, spy, seconds + 30.0)
            for name, (spy, _) in spies.items()
        }
    profiles: list[dict[str, Any]] = []
    for name, (_, out) in spies.items():
        summary = summarise_profile(out)
        if summary is None:
            profiles.append({"process": name, "error": errors[name] or "py-spy wrote no samples"})
            continue
        profiles.append(
            {
                "process": name,
                "workload": f"50 concurrent 2000-token streams via node A, {rounds} rounds in {seconds:g} s",
                "samples": summary.samples,
                "possible_samples": round(PROFILE_RATE * (seconds + 1.0)),
                "threads": [[t, round(v * 100, 1)] for t, v in summary.threads],
                "self": [[f, round(v * 100, 1)] for f, v in summary.self_top],
                "lines": [[f, round(v * 100, 1)] for f, v in summary.lines_top],
                "inclusive": [[f, round(v * 100, 1)] for f, v in summary.inclusive_top],
            }
        )
    return profiles


# the section ---------------------------------------------------------------------------------------


@dataclass
class Deployment:
    """The processes of one database: started here, stopped by `stop_all` (last started first)."""

    root: Path
    procs: list[Proc] = field(default_factory=list)

    def server(self, name: str, env: dict[str, str], args: tuple[str, ...] = ()) -> Proc:
        work, data = _subdir(self.root, name)
        proc = start_server(data, work, env_extra=env, args=args)
        self.procs.append(proc)
        return proc

    def worker(self, name: str, env: dict[str, str]) -> Proc:
        work, data = _subdir(self.root, name)
        proc = start_worker(data, work, env)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if stop(proc) not in (0, -15, None):  # -15: SIGTERM, as servers end
                log(f"PROBLEM: {proc.name} ({proc.log.parent.name}) exited with {proc.process.returncode}:")
                log(proc.log_tail(15))
        self.procs.clear()


async def warm_up(setups: list[Setup], stub_pool: Pool, stub_short: Target, rounds: int) -> None:
    log(f"scale-out: warm-up, {rounds} rounds of a 2000- and a 20-token answer on every node")
    for _ in range(rounds):
        for setup in setups:
            for node in setup.nodes:
                _checked(await stream_once(node.pool, node.long, REQUEST_TIMEOUT), setup.name, LONG_TOKENS)
                _checked(await stream_once(node.pool, node.short, REQUEST_TIMEOUT), setup.name, SHORT_TOKENS)
        _checked(await stream_once(stub_pool, stub_short, REQUEST_TIMEOUT), STUB, SHORT_TOKENS)


def missed(results: dict[str, Any]) -> bool:
    ttft, fifty = results["first_token"], results["throughput"]["levels"].get("50", {})
    return any(not ttft[name]["pass"] for name in WORKER_SETUPS) or any(
        not fifty.get(name, {}).get("pass", False) for name in WORKER_SETUPS
    )


async def measure(
    stub: Proc, workdir: Path, *, quick: bool, force_profile: bool = False, wait_quiet: float = 0.0
) -> dict[str, Any]:
    """The scale-out section's figures. Every process, database and Redis key made here is gone
    afterwards, however it ends."""
    plan = Plan.make(quick)
    root = workdir / "scale"
    root.mkdir()
    tag = uuid.uuid4().hex[:12]
    prefix, expiry_prefix = f"bench-scale-{tag}", f"bench-scale-{tag}-expiry"
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=10)
    common = {"STREAMWISE_SECRET_KEY": Fernet.generate_key().decode(), "STREAMWISE_LOG_LEVEL": "warning"}
    try:
        await client.ping()
        async with contextlib.AsyncExitStack() as stack:
            base_url = await stack.enter_async_context(postgres_test_database())
            cluster_url = await stack.enter_async_context(postgres_test_database())
            main = Deployment(root)
            stack.callback(main.stop_all)  # before the databases are dropped
            results = await _main_deployment(
                main, stub, client, plan, common, base_url, cluster_url, prefix, force_profile, wait_quiet
            )
            main.stop_all()
            await clear_stub(stub)

            expiry_url = await stack.enter_async_context(postgres_test_database())
            small = Deployment(root / "expiry")
            stack.callback(small.stop_all)
            env = {
                **common,
                "STREAMWISE_DATABASE_URL": expiry_url,
                "STREAMWISE_REDIS_URL": REDIS_URL,
                "STREAMWISE_REDIS_PREFIX": expiry_prefix,
                "STREAMWISE_RESUME_SECONDS": str(SHORT_RESUME_SECONDS),
            }
            log("scale-out: a second deployment (1 API + 1 worker) with a short resume window")
            api = small.server("api", env, ("--role", "api"))
            small.worker("worker", env)
            node = make_node("node", api, *await create_chatflows(api, stub))
            try:
                results["expiry"] = await expiry_check(
                    client, expiry_prefix, node, plan.expiry_runs, SHORT_RESUME_SECONDS
                )
            finally:
                node.pool.close()
            small.stop_all()
            await clear_stub(stub)
        return results
    finally:
        try:
            for name in (prefix, expiry_prefix):
                deleted = await delete_prefix(client, name)
                log(f"scale-out: deleted {deleted} Redis keys under {name}:")
        finally:
            await client.aclose()


async def _main_deployment(
    main: Deployment,
    stub: Proc,
    client: aioredis.Redis,
    plan: Plan,
    common: dict[str, str],
    base_url: str,
    cluster_url: str,
    prefix: str,
    force_profile: bool,
    wait_quiet: float,
) -> dict[str, Any]:
    cluster = {
        **common,
        "STREAMWISE_DATABASE_URL": cluster_url,
        "STREAMWISE_REDIS_URL": REDIS_URL,
        "STREAMWISE_REDIS_PREFIX": prefix,
    }
    log("scale-out: starting an in-process server, 2 API nodes and 2 workers (PostgreSQL, Redis)")
    inproc = main.server("in-process", {**common, "STREAMWISE_DATABASE_URL": base_url})
    api_a = main.server("api-a", cluster, ("--role", "api"))
    api_b = main.server("api-b", cluster, ("--role", "api"))
    workers = [main.worker(f"worker-{n + 1}", cluster) for n in range(WORKERS)]

    base_ids = await create_chatflows(inproc, stub)
    cluster_ids = await create_chatflows(api_a, stub)  # node B reads them from the database
    node_in = make_node("server", inproc, *base_ids)
    node_a = make_node("node A", api_a, *cluster_ids)
    setups = [
        Setup(INPROC, [node_in]),
        Setup(ONE_API, [node_a]),
        Setup(TWO_API, [node_a, make_node("node B", api_b, *cluster_ids)]),
    ]
    stub_pool = Pool(HOST, _port(stub.url))
    try:
        problems = await verify_node(node_in, INPROC)
        stub_short = await stub_short_target(stub)  # the body of the in-process server's last request
        services = _service_pids()
        roles = {
            "stub": [stub.pid],
            "in-process server": [inproc.pid],
            "API node A": [api_a.pid],
            "API node B": [api_b.pid],
            **{f"worker {n + 1}": [w.pid] for n, w in enumerate(workers)},  # each: how work spreads
            **services,  # looked up afresh by every CpuMeter sample
        }
        results: dict[str, Any] = {
            "plan": {
                "warmup": plan.warmup,
                "ttft_runs": plan.ttft_runs,
                "repeats": [list(r) for r in plan.repeats],
                "quick": plan.warmup < 5,
            },
            "targets": TARGETS,
            "problems": problems,
            "workers": WORKERS,
            "worker_concurrency": WORKER_CONCURRENCY,
            "processes": {
                "ours": 2 + len(main.procs),  # the client, the stub, the servers and the workers
                "servers": len(main.procs) - WORKERS,
                "cores": os.cpu_count() or 0,
                "redis": len(services["redis"]),
                "postgres": len(services["postgres"]),
            },
        }
        # First, before any other run through the workers: no key of an earlier run expires meanwhile.
        memory_meter = CpuMeter(roles)
        with memory_meter.measuring():
            results["redis_memory"] = await redis_memory(client, prefix, node_a, MEMORY_RUNS)
        results["redis_memory"]["cpu"] = memory_meter.figures()
        await clear_stub(stub)
        problems += await verify_node(node_a, ONE_API)
        problems += await verify_node(setups[2].nodes[1], TWO_API)
        for problem in problems:
            log(f"PROBLEM: {problem}")

        await warm_up(setups, stub_pool, stub_short, plan.warmup)
        await clear_stub(stub)
        quiet_share = await quiet(wait_quiet)
        ttft_meter = CpuMeter(roles)
        with ttft_meter.measuring():
            results["first_token"] = await first_token(setups, stub_pool, stub_short, plan)
        results["first_token"]["cpu"] = ttft_meter.figures()
        results["first_token"]["quiet_share_before"] = quiet_share
        await clear_stub(stub)
        results["throughput"] = await throughput(setups, roles, plan, wait_quiet)
        await clear_stub(stub)

        if missed(results) or force_profile:
            log("scale-out: profiling node A and a worker under 50 concurrent 2000-token streams")

            async def fifty() -> None:
                await spread_load([node_a], 50, 60.0)

            results["profiles"] = await profile_nodes(
                {"API node A": api_a, "worker 1": workers[0]}, main.root, plan.profile_seconds, fifty
            )
            await clear_stub(stub)
        else:
            results["profiles"] = []
        for proc in main.procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} ({proc.log.parent.name}) died:\n{proc.log_tail()}")
        return results
    finally:
        stub_pool.close()
        for setup in setups:
            setup.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--profile", action="store_true", help="profile node A and a worker regardless")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S", help="wait for a quiet machine")
    args = parser.parse_args(argv)

    async def run() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="streamwise-bench-scale-") as tmp:
            workdir = Path(tmp)
            stub = start_stub(LONG_TOKENS, workdir)
            try:
                return await measure(
                    stub, workdir, quick=args.quick, force_profile=args.profile, wait_quiet=args.wait_quiet
                )
            finally:
                stop(stub)

    print(json.dumps(uvloop.run(run())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
