"""The flow users run: a Flowise 3.x export of ChatOpenAI → Conversation Chain + Buffer Memory.

Measured with 0 earlier turns (a new chat each request) and with 20 (chats filled beforehand with ten
exchanges, each used once), with the crash-safe writes on (the default) and, on a second server in
the same run, off: the difference between the two is what those writes add before the first token.
A third server ("keyed", configured like the default one) has an API key, its chatflow bound to it
and a rate limit too high to refuse anything, and every request sends the key: its difference from
the default server is what the key check and the rate limiter add. Each Streamwise request is paired
with the stub answering the very body Streamwise sent it for that case, in alternating order; for
each history length the servers are measured one after another, so that they are compared over
nearby stretches of time.

Every chatflow is created with an `apiConfig` that enables exactly the inputs the requests override
(`SHORT`, on the chat model's node label): overrideConfig is ignored everywhere else.
"""

from __future__ import annotations

import json
import statistics
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from bench_http import FLOWISE, OPENAI, Pool, StreamResult, Target, post_json, stream_once
from bench_procs import HOST, Proc

EXPORT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "flowise3_conversation.json"
HISTORY_EXCHANGES = {0: 0, 20: 10}  # earlier turns → exchanges to fill a chat with beforehand
SHORT = {"modelName": "stub?tokens=20"}  # overrideConfig for the 20-token answers
MODEL_NODE = "chatOpenAI"  # the node whose inputs SHORT overrides
# The keyed server's chatflow: the limiter counts every request and never refuses one.
KEYED_RATE_LIMIT = {
    "status": True,
    "limitMax": "1000000",
    "limitDuration": "60",
    "limitMsg": "The benchmark's rate limit is never meant to be reached",
}
KEYED, OPEN = "keyed", "crash-safe"  # the servers whose difference is what keyed mode costs
TIMEOUT = 30.0
TARGETS = {
    "chat_added_ttft_ms": {"target": 3.0, "before": 6.5},
    "chat_stream_ratio": {"target": 1.5, "before": 2.1},
    "chat_keyed_ttft_ms": {"target": 0.5},  # first-token delay keyed mode adds to the open server's
}


def exported_flow(base_url: str) -> str:
    text = EXPORT.read_text().replace("__BASE_URL__", base_url).replace("__MODEL__", "stub")
    return json.dumps(json.loads(text))


def model_label() -> str:
    """The label (`data.label`) of the export's chat model node: apiConfig enables inputs by label."""
    nodes = json.loads(EXPORT.read_text())["nodes"]
    labels = {node["data"]["label"] for node in nodes if node["data"].get("name") == MODEL_NODE}
    if len(labels) != 1:
        raise RuntimeError(f"{EXPORT.name}: expected one {MODEL_NODE} label, found {sorted(labels)}")
    label: str = labels.pop()
    return label


def api_config(rate_limit: dict[str, Any] | None = None) -> str:
    """A chatflow's `apiConfig`: the overrides of SHORT enabled on the chat model, nothing else."""
    enabled = [{"name": name, "enabled": True} for name in SHORT]
    config: dict[str, Any] = {"overrideConfig": {"status": True, "nodes": {model_label(): enabled}}}
    if rate_limit is not None:
        config["rateLimit"] = rate_limit
    return json.dumps(config)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@dataclass(frozen=True)
class ApiKey:
    id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def create_api_key(server: Proc, name: str) -> ApiKey:
    """A new key, created over HTTP while the server has none (so the route needs no key yet)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
        response = await client.post("/api/v1/apikey", json={"keyName": name})
    if response.status_code != 200:
        raise RuntimeError(f"creating API key {name!r} failed: {response.status_code} {response.text}")
    # Only the key just created is listed in full; the others show `sw_<lookup>_…`.
    new = [
        entry
        for entry in response.json()
        if entry.get("keyName") == name and not str(entry.get("apiKey", "")).endswith("\u2026")
    ]
    if len(new) != 1:
        raise RuntimeError(f"the answer to creating API key {name!r} does not hold it: {response.text[:300]}")
    return ApiKey(new[0]["id"], new[0]["apiKey"])


class ChatServer:
    """One server with the exported chatflow, and chats ready for each history length."""

    def __init__(self, name: str, server: Proc, chatflow_id: str, key: ApiKey | None = None) -> None:
        self.name = name
        self.server = server
        self.chatflow_id = chatflow_id
        self.key = key
        self.headers = key.headers if key is not None else {}  # sent with every request
        self.pool = Pool(HOST, port_of(server.url))
        self.ready: dict[int, list[str]] = {turns: [] for turns in HISTORY_EXCHANGES}

    @classmethod
    async def create(
        cls,
        name: str,
        server: Proc,
        stub: Proc,
        *,
        key: ApiKey | None = None,
        rate_limit: dict[str, Any] | None = None,
    ) -> ChatServer:
        """The exported chatflow on `server`; with `key`, bound to it (and created with it)."""
        body: dict[str, Any] = {
            "name": "bench-chat",
            "flowData": exported_flow(stub.url + "/v1"),
            "apiConfig": api_config(rate_limit),
        }
        if key is not None:
            body["apikeyid"] = key.id
        headers = key.headers if key is not None else {}
        async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT, headers=headers) as client:
            created = await client.post("/api/v1/chatflows", json=body)
            if created.status_code != 200:
                raise RuntimeError(
                    f"{name}: creating the chatflow failed: {created.status_code} {created.text}"
                )
            chatflow_id: str = created.json()["id"]
        if key is not None:
            # The bench must measure a chatflow that needs its key: without it, a prediction is refused.
            async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
                refused = await client.post(f"/api/v1/prediction/{chatflow_id}", json={"question": "Hello"})
            if refused.status_code != 401:
                raise RuntimeError(f"{name}: a prediction without the key got {refused.status_code}, not 401")
        return cls(name, server, chatflow_id, key)

    async def fill(self, turns: int, chats: int) -> None:
        """`chats` new chats holding `turns` earlier turns each (short answers)."""
        async with httpx.AsyncClient(
            base_url=self.server.url, timeout=TIMEOUT, headers=self.headers
        ) as client:
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
            HOST,
            port_of(self.server.url),
            f"/api/v1/prediction/{self.chatflow_id}",
            body,
            FLOWISE,
            self.headers,
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
    """Per server and history length: the first-token delay (20 tokens) and the 2000-token time.

    For each history length the servers are measured back to back, so that those compared with one
    another run over nearby stretches of time. Entries are keyed "server/turns", in the order of
    `servers`, then `keyed_cost` when both the keyed and the open server ran."""
    stub_pool = Pool(HOST, port_of(stub.url))
    measured: dict[str, Any] = {}
    try:
        for turns in HISTORY_EXCHANGES:
            for chat in servers:
                measured[f"{chat.name}/{turns}"] = await _case(chat, stub, stub_pool, turns, runs, warmup)
    finally:
        stub_pool.close()
        for chat in servers:
            chat.pool.close()
    results = {
        f"{chat.name}/{turns}": measured[f"{chat.name}/{turns}"]
        for chat in servers
        for turns in HISTORY_EXCHANGES
    }
    cost = keyed_cost(results)
    if cost:
        results["keyed_cost"] = cost
    return results


async def _case(
    chat: ChatServer, stub: Proc, stub_pool: Pool, turns: int, runs: int, warmup: int
) -> dict[str, Any]:
    if turns:
        await chat.fill(turns, 2 * (runs + warmup + 1))
    for _ in range(warmup):
        _ok(await stream_once(chat.pool, chat.target(turns, True), TIMEOUT), chat.name, 20)
        _ok(await stream_once(chat.pool, chat.target(turns, False), TIMEOUT), chat.name, 2000)
    short = await _paired(chat, stub, stub_pool, turns, True, runs)
    long = await _paired(chat, stub, stub_pool, turns, False, runs)
    added = _median(short["sw_ttft"]) - _median(short["stub_ttft"])
    ratio = _median(long["sw_total"]) / _median(long["stub_total"])
    return {
        "server": chat.name,
        "keyed": chat.key is not None,
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


def keyed_cost(results: dict[str, Any]) -> dict[str, Any]:
    """Per history length: the first-token delay the keyed server added minus the open one's (each
    over its own paired stub runs, so the stub's drift cancels), against the keyed-mode target."""
    target = TARGETS["chat_keyed_ttft_ms"]["target"]
    cost: dict[str, Any] = {}
    for turns in HISTORY_EXCHANGES:
        keyed, open_ = results.get(f"{KEYED}/{turns}"), results.get(f"{OPEN}/{turns}")
        if keyed is None or open_ is None:
            continue
        extra = keyed["added_ttft_ms"] - open_["added_ttft_ms"]
        cost[str(turns)] = {
            "history_turns": turns,
            "keyed_added_ttft_ms": keyed["added_ttft_ms"],
            "open_added_ttft_ms": open_["added_ttft_ms"],
            "extra_ttft_ms": round(extra, 3),
            "target_ms": target,
            "pass": extra <= target,
            "keyed_ratio": keyed["ratio"],
            "open_ratio": open_["ratio"],
        }
    return cost
