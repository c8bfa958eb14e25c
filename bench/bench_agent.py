"""A Tool Agent's two-round answer, end to end, against the stub's own time for the same two rounds.

The agent (ChatOpenAI on the stub → Tool Agent with the Calculator) answers one question: the first
model round asks for one calculator call, the second streams a 500-token answer. Streamwise's time is
from sending the prediction to its `end` frame. The direct time is the stub answering the very two
request bodies Streamwise sent it (taken from its request log), one after the other, read by the same
raw client to `[DONE]`; the tool's own time is the calculator called in this process. Target:
Streamwise's time at most 1.5 times (direct + tool).

For scale, the same run measures a plain answer of the same length (ChatOpenAI → LLM Chain, one
round) against the stub's own time for that round: what any run costs, tools or not.

    .venv/bin/python bench/bench_agent.py [--runs 30]     # prints JSON (stub and server started here)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import uvloop  # noqa: E402
from bench_http import FLOWISE, OPENAI, Pool, post_json, stream_once  # noqa: E402
from bench_procs import HOST, Proc, start_server, start_stub, stop  # noqa: E402
from tests.support.flows import agent_flow, llm_chain_flow, node, openai_model, stub_calls  # noqa: E402
from tests.support.sse import check_invariant, parse_frames  # noqa: E402

from streamwise.engine.ports import EmptyHistory, SessionContext  # noqa: E402
from streamwise.engine.tools import ToolContext  # noqa: E402
from streamwise.nodes.services import NodeServices  # noqa: E402
from streamwise.nodes.tools import calculator  # noqa: E402

TOKENS = 500
EXPRESSION = "(17 + 25) * 3"
TARGET_RATIO = 1.5
BODY = {"question": "What is (17 + 25) * 3?", "streaming": True}


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def agent_model_name() -> str:
    return stub_calls([("calculator", json.dumps({"input": EXPRESSION}))], tokens=TOKENS, case="bench-agent")


async def create_agent(server: Proc, stub: Proc) -> str:
    model = openai_model(stub.url + "/v1", modelName=agent_model_name())
    flow = agent_flow(model, [node("calculator_0", "calculator", "Tools", {})], memory=None)
    async with httpx.AsyncClient(timeout=30) as client:
        record = {"name": "bench agent", "flowData": flow}
        created = await client.post(f"{server.url}/api/v1/chatflows", json=record)
        created.raise_for_status()
        chatflow_id: str = created.json()["id"]
        check = await client.post(f"{server.url}/api/v1/prediction/{chatflow_id}", json=BODY)
        frames = parse_frames(check.content)
        check_invariant(frames)
        used = next(f for f in frames if f.event == "usedTools").data
        assert used[0]["toolOutput"] == "126", used
    return chatflow_id


PLAIN_MODEL = f"stub?tokens={TOKENS}&case=bench-plain"


async def create_plain(server: Proc, stub: Proc) -> str:
    flow = llm_chain_flow(openai_model(stub.url + "/v1", modelName=PLAIN_MODEL))
    async with httpx.AsyncClient(timeout=30) as client:
        created = await client.post(
            f"{server.url}/api/v1/chatflows", json={"name": "bench plain", "flowData": flow}
        )
        created.raise_for_status()
        chatflow_id: str = created.json()["id"]
        check = await client.post(f"{server.url}/api/v1/prediction/{chatflow_id}", json=BODY)
        check_invariant(parse_frames(check.content))
    return chatflow_id


async def sent_rounds(stub: Proc, model: str | None = None) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        records = (await client.get(f"{stub.url}/_stub/requests")).json()
    bodies = [r["body"] for r in records if r["model"] == (model or agent_model_name())]
    return bodies[-2:]


async def tool_time(repeats: int = 200) -> float:
    tool = calculator.build("calculator_0", {}, NodeServices(env={}))
    context = ToolContext(session=SessionContext("bench", "bench", "bench", EmptyHistory()))
    started = time.perf_counter()
    for _ in range(repeats):
        await tool.call({"input": EXPRESSION}, context)
    return (time.perf_counter() - started) / repeats


async def measure(server: Proc, stub: Proc, runs: int) -> dict[str, Any]:
    chatflow_id = await create_agent(server, stub)
    first, second = await sent_rounds(stub)
    sw_pool, stub_pool = Pool(HOST, _port(server.url)), Pool(HOST, _port(stub.url))
    sw_target = post_json(HOST, _port(server.url), f"/api/v1/prediction/{chatflow_id}", BODY, FLOWISE)
    round_one = post_json(HOST, _port(stub.url), "/v1/chat/completions", first, OPENAI)
    round_two = post_json(HOST, _port(stub.url), "/v1/chat/completions", second, OPENAI)
    plain_id = await create_plain(server, stub)
    [plain_body] = await sent_rounds(stub, PLAIN_MODEL)
    plain_target = post_json(HOST, _port(server.url), f"/api/v1/prediction/{plain_id}", BODY, FLOWISE)
    plain_direct = post_json(HOST, _port(stub.url), "/v1/chat/completions", plain_body, OPENAI)
    sw_times: list[float] = []
    direct_times: list[float] = []
    plain_times: list[float] = []
    plain_direct_times: list[float] = []
    try:
        for i in range(runs + 3):  # the first three warm both sides up
            result = await stream_once(sw_pool, sw_target)
            assert result.ok and result.tokens == TOKENS, (result.error, result.tokens)
            one = await stream_once(stub_pool, round_one)
            two = await stream_once(stub_pool, round_two)
            assert one.ok and two.ok and two.tokens == TOKENS
            relayed = await stream_once(sw_pool, plain_target)
            alone = await stream_once(stub_pool, plain_direct)
            assert relayed.ok and alone.ok and relayed.tokens == alone.tokens == TOKENS
            if i >= 3:
                sw_times.append(result.total)
                direct_times.append(one.total + two.total)
                plain_times.append(relayed.total)
                plain_direct_times.append(alone.total)
    finally:
        sw_pool.close()
        stub_pool.close()
    tool = await tool_time()
    sw, direct = statistics.median(sw_times), statistics.median(direct_times)
    plain, direct_plain = statistics.median(plain_times), statistics.median(plain_direct_times)
    ratio = sw / (direct + tool)
    return {
        "plain_streamwise_ms": round(plain * 1000, 2),
        "plain_direct_ms": round(direct_plain * 1000, 2),
        "plain_overhead_ms": round((plain - direct_plain) * 1000, 2),
        "plain_ratio": round(plain / direct_plain, 3),
        "runs": runs,
        "tokens": TOKENS,
        "streamwise_ms": round(sw * 1000, 2),
        "direct_ms": round(direct * 1000, 2),
        "tool_ms": round(tool * 1000, 4),
        "overhead_ms": round((sw - direct - tool) * 1000, 2),
        "ratio": round(ratio, 3),
        "target": TARGET_RATIO,
        "passed": ratio <= TARGET_RATIO,
    }


async def main_async(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sw-agent-bench-") as tmp:
        work = Path(tmp)
        stub = start_stub(TOKENS, work)
        try:
            server = start_server(work / "data", work)
            try:
                return await measure(server, stub, runs)
            finally:
                stop(server)
        finally:
            stop(stub)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    print(json.dumps(uvloop.run(main_async(args.runs)), indent=2))


if __name__ == "__main__":
    main()
