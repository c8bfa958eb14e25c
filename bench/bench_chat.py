"""The flow users run: a Flowise 3.x export of ChatOpenAI → Conversation Chain + Buffer Memory.

Measured with 0 earlier turns (a new chat each request) and with 20 (chats filled beforehand with ten
exchanges, each used once), with the crash-safe writes on (the default) and, on a second server in
the same run, off: the difference between the two is what those writes add before the first token.
Each Streamwise request is paired with the stub answering the very body Streamwise sent it for that
case, in alternating order.
"""

from __future__ import annotations

import json
import statistics
import uuid
from pathlib import Path
from typing import Any

import httpx
from bench_http import FLOWISE, OPENAI, Pool, StreamResult, Target, post_json, stream_once
from bench_procs import HOST, Proc

EXPORT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "flowise3_conversation.json"
HISTORY_EXCHANGES = {0: 0, 20: 10}  # earlier turns → exchanges to fill a chat with beforehand
SHORT = {"modelName": "stub?tokens=20"}  # overrideConfig for the 20-token answers
TIMEOUT = 30.0
TARGETS = {
    "chat_added_ttft_ms": {"target": 3.0, "before": 6.5},
    "chat_stream_ratio": {"target": 1.5, "before": 2.1},
}


def exported_flow(base_url: str) -> str:
    text = EXPORT.read_text().replace("__BASE_URL__", base_url).replace("__MODEL__", "stub")
    return json.dumps(json.loads(text))


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


class ChatServer:
    """One server with the exported chatflow, and chats ready for each history length."""

    def __init__(self, name: str, server: Proc, chatflow_id: str) -> None:
        self.name = name
        self.server = server
        self.chatflow_id = chatflow_id
        self.pool = Pool(HOST, port_of(server.url))
        self.ready: dict[int, list[str]] = {turns: [] for turns in HISTORY_EXCHANGES}

    @classmethod
    async def create(cls, name: str, server: Proc, stub: Proc) -> ChatServer:
        async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
            created = await client.post(
                "/api/v1/chatflows", json={"name": "bench-chat", "flowData": exported_flow(stub.url + "/v1")}
            )
            created.raise_for_status()
        return cls(name, server, created.json()["id"])

    async def fill(self, turns: int, chats: int) -> None:
        """`chats` new chats holding `turns` earlier turns each (short answers)."""
        async with httpx.AsyncClient(base_url=self.server.url, timeout=TIMEOUT) as client:
            for _ in range(chats):
                chat = f"h{turns}-{uuid.uuid4()}"
                for number in range(HISTORY_EXCHANGES[turns]):
                    body = {
                        "question": f"Earlier question {number}?",
                        "chatId": chat,
                        "overrideConfig": SHORT,
                    }
                    answer = await client.post(f"/api/v1/prediction/{self.chatflow_id}", json=body)
                    answer.raise_for_status()
                self.ready[turns].append(chat)

    def target(self, turns: int, short: bool) -> Target:
        chat = self.ready[turns].pop() if turns else f"h0-{uuid.uuid4()}"
        body: dict[str, Any] = {"question": "Hello", "streaming": True, "chatId": chat}
        if short:
            body["overrideConfig"] = SHORT
        return post_json(
            HOST, port_of(self.server.url), f"/api/v1/prediction/{self.chatflow_id}", body, FLOWISE
        )


def _ok(result: StreamResult, who: str, tokens: int) -> StreamResult:
    if not result.ok or result.tokens != tokens or result.first_token is None:
        raise RuntimeError(f"{who}: a {tokens}-token stream failed: {result.status} {result.error}")
    return result


async def _sent_body(stub: Proc) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        records = (await client.get(stub.url + "/_stub/requests")).json()
        await client.delete(stub.url + "/_stub/requests")
    body: dict[str, Any] = records[-1]["body"]
    return body


async def _paired(
    chat: ChatServer, stub: Proc, stub_pool: Pool, turns: int, short: bool, runs: int
) -> dict[str, list[float]]:
    tokens = 20 if short else 2000
    # The direct side replays the body Streamwise sent for this very case (history included).
    _ok(await stream_once(chat.pool, chat.target(turns, short), TIMEOUT), chat.name, tokens)
    direct = post_json(HOST, port_of(stub.url), "/v1/chat/completions", await _sent_body(stub), OPENAI)
    _ok(await stream_once(stub_pool, direct, TIMEOUT), "stub", tokens)
    measured: dict[str, list[float]] = {"sw_ttft": [], "stub_ttft": [], "sw_total": [], "stub_total": []}
    for round_ in range(runs):
        sides = [("sw", chat.pool, chat.target(turns, short)), ("stub", stub_pool, direct)]
        for side, pool, request in sides if round_ % 2 == 0 else reversed(sides):
            result = _ok(await stream_once(pool, request, TIMEOUT), side, tokens)
            measured[f"{side}_ttft"].append(result.ttft * 1000)
            measured[f"{side}_total"].append(result.total * 1000)
    return measured


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


async def chat_with_memory(servers: list[ChatServer], stub: Proc, runs: int, warmup: int) -> dict[str, Any]:
    """Per server and history length: the first-token delay (20 tokens) and the 2000-token time."""
    stub_pool = Pool(HOST, port_of(stub.url))
    results: dict[str, Any] = {}
    try:
        for chat in servers:
            for turns in HISTORY_EXCHANGES:
                if turns:
                    await chat.fill(turns, 2 * (runs + warmup + 1))
                for _ in range(warmup):
                    _ok(await stream_once(chat.pool, chat.target(turns, True), TIMEOUT), chat.name, 20)
                    _ok(await stream_once(chat.pool, chat.target(turns, False), TIMEOUT), chat.name, 2000)
                short = await _paired(chat, stub, stub_pool, turns, True, runs)
                long = await _paired(chat, stub, stub_pool, turns, False, runs)
                added = _median(short["sw_ttft"]) - _median(short["stub_ttft"])
                ratio = _median(long["sw_total"]) / _median(long["stub_total"])
                results[f"{chat.name}/{turns}"] = {
                    "server": chat.name,
                    "history_turns": turns,
                    "runs": runs,
                    "sw_ttft_ms": _median(short["sw_ttft"]),
                    "stub_ttft_ms": _median(short["stub_ttft"]),
                    "added_ttft_ms": round(added, 3),
                    "sw_total_ms": _median(long["sw_total"]),
                    "stub_total_ms": _median(long["stub_total"]),
                    "sw_total_runs": [round(v, 2) for v in long["sw_total"]],
                    "stub_total_runs": [round(v, 2) for v in long["stub_total"]],
                    "ratio": round(ratio, 3),
                    "ttft_pass": added <= TARGETS["chat_added_ttft_ms"]["target"],
                    "ratio_pass": ratio <= TARGETS["chat_stream_ratio"]["target"],
                }
    finally:
        stub_pool.close()
        for chat in servers:
            chat.pool.close()
    return results
