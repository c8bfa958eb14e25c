"""bench/results.md from the summary that bench/run.py prints."""

from __future__ import annotations

from typing import Any

import report_agent
import report_rag
import report_scale
from report_chat import headline_rows, sections

X = "\u00d7"  # multiplication sign
NONE = "\u2013"  # en dash: no value
# /proc/stat counts in 10 ms ticks per core, so a short phase needs an absolute floor too.
NOISY_CORE_SECONDS = 0.1
NOISY_SHARE = 0.05  # other processes' share of all cores above which a phase's figures are suspect

HEADER = """\
# Streamwise benchmark results

This file is written by `bench/run.py` on every run; edit the script, not this file. Run it with
`make bench` or `.venv/bin/python bench/run.py` (full run, 4 to 5 minutes, half of it the RAG
section, more with `--wait-quiet`). Options: `--quick` (a smoke run with fewer repetitions and
smaller sizes), `--wait-quiet 120` (first wait up to 120 s for other processes to leave the CPUs
alone, and up to 30 s before each RAG ingest round and before the retrieval timings), `--profile`
(sample the server with py-spy even when every target passes), `--skip-local` (leave out the
embedded model), `--skip-rag` (leave out the retrieval section: ingest rates, memory, streams during
an ingest, retrieval and first-token figures, measured by `bench/bench_rag.py` on servers of its
own, described in its section below; the rows marked **RAG** in the targets table are its),
`--skip-scale` (leave out the scale-out section, `bench/bench_scale.py`: API nodes and workers over
PostgreSQL and Redis against an in-process server; it needs both running on 127.0.0.1). The
headline is the flow users run most: a chat with memory (ChatOpenAI → Conversation Chain + Buffer
Memory, a Flowise 3.x export). It starts the
OpenAI-compatible stub
(`tests/support/openai_stub.py`, token i is `t{i} `) and `streamwise start` as subprocesses on 127.0.0.1
(uvloop each, fresh data dir, `STREAMWISE_PRELOAD_LOCAL_MODEL=false`), creates chatflows through
`POST /api/v1/chatflows` (chatOpenAI → llmChain, prompt template `{question}`, pointed at the stub) and
reads every stream with the same lean raw-socket HTTP/1.1 client (`bench/bench_http.py`, uvloop,
httptools' C parser): per network read it counts SSE frames and token events with `bytes.count`,
without parsing JSON, until the end marker (`data: [DONE]` for the stub, the `end` frame for
Streamwise). The direct requests to the stub are the very bodies Streamwise sent it. Connections are
opened and warmed before any clock starts; both sides are warmed up, runs alternate between the sides,
and each answer is checked once in full (joined tokens equal the stub's answer, `start` first, exactly
one `end`, last). Other processes' CPU use is measured per phase and flagged when it could skew figures.
"""


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return "not measured"
    return "**pass**" if passed else "**FAIL**"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _summary_rows(s: dict[str, Any]) -> list[list[str]]:
    targets = s["targets"]
    single, ttft, conc = s["single_stream"], s["first_token"], s["concurrency"]
    fifty = conc["levels"]["50"]["streamwise"]
    local = s.get("local_model", {})
    rows = [
        [
            "2000-token answer, time vs the stub's own",
            f"{single['ratio']:.2f}{X} ({single['streamwise_ms']['median']:.1f} ms vs "
            f"{single['stub_ms']['median']:.1f} ms)",
            f"≤ {targets['stream_ratio']['target']:g}{X}",
            f"{single['ratio'] / targets['stream_ratio']['target']:.2f}",
            f"{targets['stream_ratio']['flowise']:g}{X}",
            _verdict(single["pass"]),
        ],
        [
            "time added before the first token (20 tokens)",
            f"{ttft['added_ms']:.2f} ms",
            f"≤ {targets['added_ttft_ms']['target']:g} ms",
            f"{ttft['added_ms'] / targets['added_ttft_ms']['target']:.2f}",
            f"{targets['added_ttft_ms']['flowise']:g} ms",
            _verdict(ttft["pass"]),
        ],
        [
            "token events/s, 50 concurrent 2000-token streams",
            f"{fifty['events_per_second']:,}",
            f"≥ {targets['events_per_second']['target']:,.0f}",
            f"{fifty['events_per_second'] / targets['events_per_second']['target']:.2f}",
            f"{targets['events_per_second']['flowise']:,.0f}",
            _verdict(conc["events_pass"]),
        ],
        [
            "slowest first token among those 50 streams",
            f"{_fmt(fifty['ttft_max_all_s'], 3)} s",
            f"≤ {targets['first_token_s']['target']:g} s",
            NONE
            if fifty["ttft_max_all_s"] is None
            else f"{fifty['ttft_max_all_s'] / targets['first_token_s']['target']:.2f}",
            NONE,
            _verdict(conc["first_token_pass"]),
        ],
    ]
    if "ratio" in local:
        rows.append(
            [
                "embedded model tokens/s, server vs direct",
                f"{local['ratio']:.3f} (medians {local['server_tps']:.1f} vs "
                f"{local['direct_tps']:.1f} tokens/s)",
                f"≥ {targets['local_ratio']['target']:g}",
                f"{local['ratio'] / targets['local_ratio']['target']:.2f}",
                NONE,
                _verdict(local["pass"]),
            ]
        )
    else:
        reason = local.get("skipped") or local.get("error") or "not run"
        rows.append(
            ["embedded model tokens/s, server vs direct", reason, "≥ 0.95", NONE, NONE, "not measured"]
        )
    return rows


def _spread(d: dict[str, float]) -> str:
    return f"{d['median']:.2f} (min {d['min']:.2f}, max {d['max']:.2f}, n={d['runs']})"


def render(s: dict[str, Any]) -> str:
    m = s["machine"]
    out = [HEADER]
    kind = "quick smoke run (fewer repetitions; not the reference figures)" if s["quick"] else "full run"
    out += [
        "## This run",
        "",
        f"- Date: {s['date']} ({kind}, {s['duration_s']} s)",
        f"- Command: `{s['command']}`",
        f"- Code: commit {s['code']['commit']}"
        + (
            f", with uncommitted changes in {', '.join(s['code']['changed'])}"
            if s["code"]["changed"]
            else ", no uncommitted changes in src/ or tests/"
        ),
        f"- Machine: {m['cores']} cores, {m['cpu']}, Python {m['python']} ({m['platform']})",
        "- Client, stub and server share these cores. Other processes used "
        f"{s['other_cpu']['core_seconds']} core-seconds during the run "
        f"({s['other_cpu']['share_of_machine']:.0%} of the machine): the more, the noisier the figures.",
        "",
        "## Targets",
        "",
    ]
    noisy = [
        (title, phase["other_cpu"]["share_of_machine"])
        for title, phase in (
            ("one 2000-token stream", s["single_stream"]),
            ("first token", s["first_token"]),
            ("concurrent streams", s["concurrency"]),
            ("chat with memory", s.get("chat", {})),
            ("embedded model", s.get("local_model", {})),
            *report_rag.phases(s),
            *report_agent.phases(s),
            *report_scale.phases(s),
        )
        if phase.get("other_cpu", {}).get("share_of_machine", 0.0) > NOISY_SHARE
        and phase["other_cpu"]["core_seconds"] >= NOISY_CORE_SECONDS
    ]
    if noisy:
        phases = ", ".join(f"{title} ({share:.0%})" for title, share in noisy)
        out += [
            f"**Warning: other processes were busy on this machine during: {phases} (share of all cores).",
            "Those figures are skewed; rerun on a quiet machine.**",
            "",
        ]
    head = ["what", "measured", "target", "measured / target", "Flowise 3.1.4", "result"]
    out += _table(
        head,
        headline_rows(s)
        + _summary_rows(s)
        + report_rag.rows(s)
        + report_agent.rows(s)
        + report_scale.rows(s),
    )
    out.append("")
    out += sections(s)
    if s.get("problems"):
        out += ["## Problems (the answers were not right)", ""]
        out += [f"- {p}" for p in s["problems"]]
        out.append("")

    single = s["single_stream"]
    out += [
        "## One 2000-token stream",
        "",
        "Milliseconds from writing the request to receiving the end marker; median (min, max, runs).",
        "",
    ]
    out += _table(
        ["", "total ms", "first token ms", "network reads per answer (median)"],
        [
            [
                "Streamwise",
                _spread(single["streamwise_ms"]),
                _spread(single["streamwise_ttft_ms"]),
                _fmt(single["streamwise_reads"]),
            ],
            [
                "stub direct",
                _spread(single["stub_ms"]),
                _spread(single["stub_ttft_ms"]),
                _fmt(single["stub_reads"]),
            ],
        ],
    )
    ttft = s["first_token"]
    out += [
        "",
        "## First token, 20-token answers",
        "",
        "Milliseconds from writing the request to the first token event with non-empty data.",
        "",
    ]
    out += _table(
        ["", "first token ms", "whole answer ms"],
        [
            ["Streamwise", _spread(ttft["streamwise_ttft_ms"]), _spread(ttft["streamwise_total_ms"])],
            ["stub direct", _spread(ttft["stub_ttft_ms"]), _spread(ttft["stub_total_ms"])],
        ],
    )
    out += [
        "",
        f"Added by Streamwise: {ttft['added_ms']:.2f} ms (difference of the medians).",
        "",
        "## Concurrent 2000-token streams",
        "",
        "Events/s = token events received by all clients / wall time from the first request written to the",
        "last end marker. Each level is warmed up once (every connection opened), then measured; at 50",
        "streams the median of the repeats is shown, and the slowest first token is over all repeats.",
        "",
    ]
    rows = []
    for level, sides in s["concurrency"]["levels"].items():
        for name, label in (("streamwise", "Streamwise"), ("stub", "stub direct")):
            r = sides[name]
            rows.append(
                [
                    level,
                    label,
                    f"{r['events_per_second']:,}",
                    ", ".join(f"{v:,}" for v in r["repeats"]),
                    f"{r['wall_s']:.3f}",
                    f"{_fmt(r['ttft_median_s'], 3)} / {_fmt(r['ttft_max_all_s'], 3)}",
                    f"{r['token_events']:,} of {r['token_events_expected']:,}",
                    str(r["failures_all"]),
                ]
            )
    out += _table(
        [
            "streams",
            "side",
            "token events/s",
            "each repeat",
            "wall s",
            "first token s (median / max)",
            "token events",
            "failed streams",
        ],
        rows,
    )
    for level, sides in s["concurrency"]["levels"].items():
        for name, label in (("streamwise", "Streamwise"), ("stub", "stub direct")):
            for error in sides[name].get("errors_all", []):
                out += ["", f"Failed stream ({level} streams, {label}): `{error}`"]
    fifty = s["concurrency"]["levels"]["50"]
    out += [
        "",
        f"The stub alone, read directly by the same client, delivered its slowest first token at "
        f"{_fmt(fifty['stub']['ttft_max_all_s'], 3)} s with 50 streams: no relay of it can do better.",
        "Slowest first token of each 50-stream repeat through Streamwise: "
        + ", ".join(f"{_fmt(v, 3)} s" for v in fifty["streamwise"]["repeats_ttft_max_s"])
        + ".",
        "",
        "Per-request work: 50 concurrent 20-token answers, after one warm-up burst.",
        "",
    ]
    short = s["concurrency"]["short_50"]
    out += _table(
        ["side", "wall s", "ms per request (wall / 50)", "first token s (median / max)", "failed"],
        [
            [
                label,
                f"{short[name]['wall_s']:.3f}",
                f"{short[name]['ms_per_request']:.2f}",
                f"{_fmt(short[name]['ttft_median_s'], 3)} / {_fmt(short[name]['ttft_max_s'], 3)}",
                str(short[name]["failures"]),
            ]
            for name, label in (("streamwise", "Streamwise"), ("stub", "stub direct"))
        ],
    )
    mem = s["memory"]
    out += [
        "",
        "## Server memory",
        "",
        "From /proc/<pid>/status of the `streamwise start` process.",
        "",
    ]
    out += _table(
        ["", "MiB"],
        [
            ["RSS at idle, after start (VmRSS)", _fmt(mem["idle_at_start_mib"])],
            ["peak RSS over the remote-model runs (VmHWM)", _fmt(mem["peak_remote_mib"])],
            ["RSS at idle after those runs (VmRSS)", _fmt(mem["idle_after_load_mib"])],
            ["peak RSS once the embedded model ran too (VmHWM)", _fmt(mem.get("peak_with_local_model_mib"))],
        ],
    )
    out += ["", "## Embedded model (chatLocalModel)", ""]
    local = s.get("local_model", {})
    if "ratio" in local:
        out += [
            f"{local['model']}, maxTokens {local['max_tokens']}, same prompt and sampling on both sides, "
            f"{local['runs']} alternating runs. The node has no `ignore_eos` input, so both sides",
            "may stop at EOS; tokens are counted (token events through the server, content chunks directly).",
            "Rate = (tokens - 1) / (time from the first token to the end): the end frame through the server,",
            "the return of `handle_chat_completions` directly. `measure_direct` (bench/local_model.py,",
            "ignore_eos, call → last chunk) is shown for reference.",
            "",
        ]
        out += _table(
            ["", "tokens/s (median)", "each run", "tokens per answer", "first token ms"],
            [
                [
                    "through the server (HTTP)",
                    _fmt(local["server_tps"]),
                    ", ".join(_fmt(v) for v in local["server_tps_runs"]),
                    ", ".join(str(v) for v in local["server_tokens"]),
                    _spread(local["server_ttft_ms"]),
                ],
                [
                    "xllamacpp directly",
                    _fmt(local["direct_tps"]),
                    ", ".join(_fmt(v) for v in local["direct_tps_runs"]),
                    ", ".join(str(v) for v in local["direct_tokens"]),
                    _spread(local["direct_ttft_ms"]),
                ],
            ],
        )
        out += [
            "",
            f"Ratio {local['ratio']:.3f}: the median of each round's server rate over that round's direct "
            f"rate ({', '.join(f'{v:.3f}' for v in local['paired_ratios'])}); the ratio of the medians is "
            f"{local['ratio_of_medians']:.3f}. `measure_direct`: {local['measure_direct_tps']:.1f} tokens/s "
            f"(server vs it: {local['ratio_vs_measure_direct']:.3f}). Through the server, request to end: "
            f"{local['server_end_to_end_tps']:.1f} tokens/s. Loading the model in the server plus its first "
            f"answer: {local['server_load_and_first_answer_s']:.2f} s.",
            "",
            "Where the server's time goes while it streams the embedded model: its event loop (the main",
            f"thread) used {local['loop_cpu_us_per_token']} µs of CPU per token, "
            f"{100 * (local['server_cpu_share_of_loop'] or 0):.1f}% of the server's CPU; llama.cpp's two "
            "decoding threads used the rest, busy on both cores. Each token costs the loop a wake-up from",
            "the decoding thread, a socket write and an epoll round (mostly system calls, in uvloop's C code",
            "by py-spy), and the client's read; on two cores all of that competes with llama.cpp's threads,",
            "which calling xllamacpp directly does not have to share.",
        ]
    else:
        out.append(str(local.get("skipped") or local.get("error") or "not run"))
    rag = report_rag.sections(s)
    if rag:
        out += ["", *rag]
    out += ["", *report_agent.sections(s)]
    out += ["", *report_scale.sections(s)]
    profiles = s.get("profiles") or []
    if profiles:
        out += [
            "",
            "## Where the server's time goes (py-spy)",
            "",
            "Sampled with `py-spy record --nonblocking --rate 200` on the server process while the",
            "workload repeated. Self = the frame was on top of the stack; inclusive = anywhere on it",
            "(share of samples).",
        ]
        for p in profiles:
            out += ["", f"### {p['workload']}", ""]
            if "error" in p:
                out.append(f"Not profiled: {p['error']}")
                continue
            main = next((share for name, share in p["threads"] if name == "MainThread"), 0.0)
            busy = main / 100 * p["samples"] / p["possible_samples"]
            threads = ", ".join(f"{name} {share:.1f}%" for name, share in p["threads"])
            out += [
                f"{p['samples']:,} non-idle samples; by thread: {threads}. The main thread (the event loop)",
                f"was busy about {busy:.0%} of the sampled time.",
                "",
            ]
            out += _table(["self %", "function"], [[f"{v:.1f}", f"`{f}`"] for f, v in p["self"]])
            out.append("")
            out += _table(["self %", "line"], [[f"{v:.1f}", f"`{f}`"] for f, v in p["lines"]])
            out.append("")
            out += _table(
                ["inclusive %", "function (uvicorn's entry frames left out)"],
                [[f"{v:.1f}", f"`{f}`"] for f, v in p["inclusive"]],
            )
    out.append("")
    return "\n".join(out)
