"""The Tool Agent's rows and section of bench/results.md (figures from bench/bench_agent.py)."""

from __future__ import annotations

from typing import Any

X = "\u00d7"  # multiplication sign
NONE = "\u2013"  # en dash: no value


def _agent(s: dict[str, Any]) -> dict[str, Any] | None:
    agent = s.get("agent")
    return agent if agent and "ratio" in agent else None


def phases(s: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    agent = _agent(s)
    return [("tool agent", agent)] if agent else []


def rows(s: dict[str, Any]) -> list[list[str]]:
    agent = _agent(s)
    if agent is None:
        return []
    verdict = "**pass**" if agent["passed"] else "**FAIL**"
    return [
        [
            "**agent**: two rounds (one calculator call, a 500-token answer) vs the stub's own + the tool's",
            f"{agent['ratio']:.2f}{X} ({agent['streamwise_ms']:.2f} ms vs {agent['direct_ms']:.2f} + "
            f"{agent['tool_ms']:.3f} ms)",
            f"≤ {agent['target']:g}{X}",
            f"{agent['ratio'] / agent['target']:.2f}",
            NONE,
            verdict,
        ]
    ]


def sections(s: dict[str, Any]) -> list[str]:
    agent = s.get("agent") or {}
    out = ["## Tool Agent", ""]
    if "ratio" not in agent:
        return [*out, str(agent.get("skipped") or agent.get("error") or "not run")]
    out += [
        "Measured by `bench/bench_agent.py` (alone: `.venv/bin/python bench/bench_agent.py --runs 30`) on",
        "the run's server and stub: ChatOpenAI at the stub → Tool Agent with the Calculator, no memory.",
        "The first model round asks for one calculator call, the second streams 500 tokens. Streamwise's",
        "time runs from the request to its `end` frame; the direct time is the stub answering the very",
        "two bodies Streamwise sent it, one after the other, read to `[DONE]` by the same raw client; the",
        "tool's time is the calculator called in process. For scale, a plain answer of the same length",
        "(ChatOpenAI → LLM Chain, one round) against the stub's own time for it. Medians in milliseconds,",
        f"{agent['runs']} runs each, alternating.",
        "",
        "| | Streamwise | stub direct | tool | added by Streamwise | ratio |",
        "|---|---|---|---|---|---|",
        f"| agent, 2 rounds | {agent['streamwise_ms']:.2f} | {agent['direct_ms']:.2f} | "
        f"{agent['tool_ms']:.3f} | {agent['overhead_ms']:.2f} | {agent['ratio']:.2f}{X} |",
        f"| plain answer, 1 round | {agent['plain_streamwise_ms']:.2f} | {agent['plain_direct_ms']:.2f} | "
        f"{NONE} | {agent['plain_overhead_ms']:.2f} | {agent['plain_ratio']:.2f}{X} |",
        "",
        f"The agent's own work (a second model round, the tool call, the tool turns) added "
        f"{agent['overhead_ms'] - agent['plain_overhead_ms']:.2f} ms over a plain answer of the same length;",
        "the rest is what every run costs (the request, the chatflow, the history writes)"
        + (
            "."
            if agent["passed"]
            else f", and at 500 tokens that alone is more than the 1.5{X} target allows."
        ),
    ]
    return out
