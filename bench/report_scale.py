"""The scale-out (worker mode) rows and section of bench/results.md (figures from bench/bench_scale.py)."""

from __future__ import annotations

from typing import Any

NONE = "\u2013"  # en dash: no value
X = "\u00d7"  # multiplication sign
INPROC, ONE_API, TWO_API, STUB = "in-process", "1 API + 2 workers", "2 API + 2 workers", "stub direct"
WORKER_SETUPS = (ONE_API, TWO_API)
ENTRY_SHARE = 90.0  # % of samples: a frame under that many says nothing about where the time goes
# A worker's entry frames (uvloop, or asyncio's own loop): under every sample of its event loop.
ENTRY_FRAMES = (
    "(asyncio/base_events.py)",
    "(asyncio/runners.py)",
    "Handle._run (asyncio/events.py)",
    "run (uvloop/__init__.py)",
    "run (streamwise/worker_command.py)",
    "run_on_fastest_loop (streamwise/worker_command.py)",
)
SETUPS = (INPROC, ONE_API, TWO_API)
# CPU roles, in the order shown; the workers' and API nodes' columns are only there for worker mode.
ROLES = (
    "in-process server",
    "API node A",
    "API node B",
    "worker 1",
    "worker 2",
    "redis",
    "postgres",
    "stub",
    "client",
    "other",
)


def _verdict(passed: bool) -> str:
    return "**pass**" if passed else "**FAIL**"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _scale(s: dict[str, Any]) -> dict[str, Any] | None:
    scale = s.get("scale")
    return scale if scale and "first_token" in scale and "throughput" in scale else None


def _s(value: float | None, digits: int = 3) -> str:
    return NONE if value is None else f"{value:.{digits}f}"


def _worst(values: list[float | None]) -> float | None:
    return max((v for v in values if v is not None), default=None)


def phases(s: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The section's timed phases, for the noise warning (each has `other_cpu`)."""
    scale = _scale(s)
    if scale is None:
        return []
    out: list[tuple[str, dict[str, Any]]] = [("scale-out first token", scale["first_token"]["cpu"])]
    for streams, level in scale["throughput"]["levels"].items():
        for setup in SETUPS:
            if setup in level:
                out.append((f"scale-out {streams} streams, {setup}", level[setup]["cpu"]))
    return out


def rows(s: dict[str, Any]) -> list[list[str]]:
    scale = _scale(s)
    if scale is None:
        return []
    ttft, fifty = scale["first_token"], scale["throughput"]["levels"].get("50", {})
    out: list[list[str]] = []
    base = ttft[INPROC]["ttft_ms"]
    target_ms = ttft["target_ms"]
    for setup in WORKER_SETUPS:
        mine = ttft[setup]
        out.append(
            [
                f"**scale-out, {setup}**: first-token delay added to the in-process server's "
                "(both on PostgreSQL, 20 tokens)",
                f"{mine['added_ms']:+.2f} ms (median {mine['ttft_ms']['median']:.2f} vs "
                f"{base['median']:.2f} ms; p95 {mine['ttft_ms']['p95']:.2f} vs {base['p95']:.2f} ms)",
                f"≤ {target_ms:g} ms",
                f"{mine['added_ms'] / target_ms:.2f}",
                NONE,
                _verdict(mine["pass"]),
            ]
        )
    target_share = scale["throughput"]["target_share_50"]
    for setup in WORKER_SETUPS:
        if setup not in fifty:
            continue
        mine, inproc = fifty[setup], fifty[INPROC]
        share = mine["share"] or 0.0
        out.append(
            [
                f"**scale-out, {setup}**: token events/s of 50 concurrent 2000-token streams, "
                "share of the in-process server's",
                f"{share:.0%} ({mine['events_per_second']:,} vs {inproc['events_per_second']:,} events/s)",
                f"≥ {target_share:.0%}",
                f"{share / target_share:.2f}",
                NONE,
                _verdict(mine["pass"]),
            ]
        )
    return out


def _cpu_table(level: dict[str, Any]) -> list[str]:
    shown = [
        role
        for role in ROLES
        if any(level[setup]["cpu"]["core_seconds"].get(role, 0.0) > 0 for setup in SETUPS)
    ]
    body = []
    for setup in SETUPS:
        per = level[setup]["cpu"].get("us_per_token_event", {})
        body.append([setup, *[_s(per.get(role), 1) for role in shown]])
    return _table(["setup", *shown], body)


def sections(s: dict[str, Any]) -> list[str]:
    scale = s.get("scale") or {}
    out = ["## Scale-out (worker mode)", ""]
    if "first_token" not in scale or "throughput" not in scale:
        return [*out, str(scale.get("skipped") or scale.get("error") or "not run")]
    procs = scale["processes"]
    workers, slots = scale["workers"], scale["worker_concurrency"]
    ttft, levels = scale["first_token"], scale["throughput"]["levels"]
    out += [
        "Measured by `bench/bench_scale.py` (alone: `.venv/bin/python bench/bench_scale.py`, prints JSON)",
        "on the run's stub, with the chatOpenAI → llmChain flow of the sections above. Three setups, all",
        "running at once and all on PostgreSQL (127.0.0.1, a throwaway database each for the in-process",
        "server and for the workers' deployment): `in-process` is one `streamwise start` without Redis;",
        f"`{ONE_API}` is `streamwise start --role api` (node A) with {workers} `streamwise worker "
        f"--concurrency {slots}`; `{TWO_API}` adds node B (idle while the other setups are measured),",
        "the client sending its streams to A and B in turn. Redis is the machine's shared one, every key",
        "under a prefix of the run's own, all deleted at the end. Every round of the measurements goes",
        "through the setups in a rotating order, so the ratios compare nearby stretches of time.",
        f"**{procs['ours']} processes share the {procs['cores']} cores**: the client, the stub, "
        f"{procs['servers']} servers (the in-process one and nodes A and B) and {workers} workers, plus "
        f"Redis and PostgreSQL's server (with a process per connection: {procs['postgres']} when counted).",
        "",
        f"First token: {ttft[INPROC]['ttft_ms']['runs']} rounds of sequential 20-token answers after the "
        "warm-up, one per setup (and one from the stub, read directly with the body the in-process server",
        "sent it) per round. Milliseconds from writing the request to the first non-empty token event.",
        "",
    ]
    rows = []
    for name in (STUB, *SETUPS):
        t, total = ttft[name]["ttft_ms"], ttft[name]["total_ms"]
        added = (
            f"{ttft[name]['added_ms']:+.2f} / {ttft[name]['added_p95_ms']:+.2f}"
            if name in WORKER_SETUPS
            else NONE
        )
        rows.append(
            [
                name,
                f"{t['median']:.2f}",
                f"{t['p95']:.2f}",
                f"{t['min']:.2f}",
                f"{t['max']:.2f}",
                f"{total['median']:.2f}",
                added,
            ]
        )
    out += _table(
        [
            "setup",
            "first token, median",
            "p95",
            "min",
            "max",
            "whole answer, median",
            "added to in-process (median / p95)",
        ],
        rows,
    )
    out += [
        "",
        "Concurrent 2000-token streams: one warm-up load per setup, then rounds of one load per setup.",
        "Token events/s as in the main section (all clients' token events / wall time from the first",
        "request written to the last end marker); the share is the median, over rounds, of that round's",
        "worker-mode figure over its in-process one. A stream is complete when it ended with the `end`",
        f"frame last and held all 2000 token events. With {workers} {X} {slots} worker slots, at 200",
        f"streams {200 - workers * slots} of the runs wait in the queue until a slot frees.",
        "",
    ]
    rows = []
    for streams, level in levels.items():
        for setup in SETUPS:
            r = level[setup]
            share = NONE
            if setup in WORKER_SETUPS:
                share = f"{r['share']:.0%} ({', '.join(f'{v:.2f}' for v in r['share_rounds'])})"
            rows.append(
                [
                    streams,
                    setup,
                    f"{r['events_per_second']:,}",
                    ", ".join(f"{v:,}" for v in r["repeats"]),
                    share,
                    f"{r['wall_s']:.3f}",
                    f"{_s(r['ttft_median_s'])} / {_s(_worst(r['repeats_ttft_max_s']))}",
                    f"{r['complete_streams']} of {r['streams']}"
                    + (
                        ""
                        if r["all_complete"]
                        else f" (**{r['incomplete_streams']} incomplete in all rounds**)"
                    ),
                ]
            )
    out += _table(
        [
            "streams",
            "setup",
            "token events/s (median)",
            "each round",
            "share of in-process (each round)",
            "wall s",
            "first token s (median / max)",
            "complete streams",
        ],
        rows,
    )
    for streams, level in levels.items():
        for setup in SETUPS:
            for error in level[setup].get("errors_all", []):
                out += ["", f"Failed stream ({streams} streams, {setup}): `{error}`"]
    for streams, level in levels.items():
        out += [
            "",
            f"CPU per token event at {streams} streams, µs (core time of each process over the measured",
            "rounds / token events delivered; `other` is every process on the machine that is not the",
            "benchmark's):",
            "",
        ]
        out += _cpu_table(level)
    memory = scale.get("redis_memory") or {}
    if memory:
        kinds = ", ".join(f"`{kind}` {count:,}" for kind, count in memory["key_kinds_new"].items())
        out += [
            "",
            f"Redis memory for finished runs: {memory['runs']:,} 20-token runs through node A, "
            f"{memory.get('complete', 0):,} complete, in {memory['seconds']:.1f} s, 50 at a time, before",
            "any other run through the workers, their events still held for the resume window",
            "(`STREAMWISE_RESUME_SECONDS`, default 60 s). `INFO memory` used_memory went from "
            f"{memory['used_memory_before']:,} to {memory['used_memory_after']:,} bytes: "
            f"**{memory['used_memory_bytes_per_run']:,} bytes per run, "
            f"{memory['used_memory_mib_per_1000']:.2f} MiB per 1,000 finished runs** (Redis is shared: "
            "other users' keys move this figure). The keys the runs left under the prefix, measured one by",
            f"one with `MEMORY USAGE … SAMPLES 0`: {memory['memory_usage_bytes_per_run']:,} bytes per run, "
            f"{memory['memory_usage_mib_per_1000']:.2f} MiB per 1,000 ({memory['keys_new']:,} keys: {kinds}; "
            f"{memory['keys_expired_meanwhile']} older keys expired meanwhile).",
        ]
    expiry = scale.get("expiry") or {}
    if expiry:
        left = ", ".join(f"`{kind}` {count}" for kind, count in expiry["keys_left"].items()) or "none"
        if expiry["vanished"]:
            gone = f"every run key was gone {expiry['run_keys_gone_after_s']:.1f} s after the last run ended"
        else:
            gone = "**run keys were still there** 20 s past the window"
        out += [
            "",
            f"Resume window: a second deployment (1 API node + 1 worker, its own database and prefix) "
            f"with `STREAMWISE_RESUME_SECONDS={expiry['resume_seconds']:g}` ran {expiry['runs']} 20-token "
            f"runs ({expiry['complete']} complete); right after, {expiry['keys_right_after']} keys were "
            f"under its prefix; {gone}; left: {left}.",
        ]
    profiles = scale.get("profiles") or []
    if profiles:
        out += [
            "",
            "### Where worker mode's time goes (py-spy)",
            "",
            "Sampled with `py-spy record --nonblocking --rate 200`, node A and worker 1 at once, while 50",
            "concurrent 2000-token streams went through node A again and again (taken because a target",
            "was missed, or with `--profile`). Self = on top of the stack; inclusive = anywhere on it.",
        ]
        for p in profiles:
            out += ["", f"#### {p.get('process', '?')}", ""]
            if "error" in p:
                out.append(f"Not profiled: {p['error']}")
                continue
            threads = ", ".join(f"{name} {share:.1f}%" for name, share in p["threads"])
            busy = p["samples"] / p["possible_samples"]
            out += [
                f"{p['workload']}: {p['samples']:,} non-idle samples of {p['possible_samples']:,} possible "
                f"({busy:.0%} busy); by thread: {threads}.",
                "",
            ]
            out += _table(["self %", "function"], [[f"{v:.1f}", f"`{f}`"] for f, v in p["self"]])
            out.append("")
            inclusive = [
                (f, v) for f, v in p["inclusive"] if v < ENTRY_SHARE and not f.endswith(ENTRY_FRAMES)
            ][:14]
            out += _table(
                ["inclusive %", "function (frames under nearly every sample left out)"],
                [[f"{v:.1f}", f"`{f}`"] for f, v in inclusive],
            )
    if scale.get("problems"):
        out += ["", "Problems (answers that were not right):", ""]
        out += [f"- {p}" for p in scale["problems"]]
    return out
