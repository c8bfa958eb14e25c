"""What the hardening promises, measured on the server process: the event loop stays responsive
under the largest accepted requests, and memory stays bounded (big chatflows created and deleted, a
client that reads nothing while a million tokens stream)."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time
from typing import Any

import httpx
from bench_procs import Proc, memory_kib
from tests.support.flows import chain_flow, fake_flow, node, openai_model
from tests.support.process import PingProbe

PING_TARGET_MS = 50.0
MAX_BODY = 10 * 1024 * 1024


def _rss_mib(pid: int) -> float:
    return round(memory_kib(pid)["VmRSS"] / 1024, 1)


def largest_chatflow() -> bytes:
    """1,000 nodes (the default limit) filling most of the 10 MiB body limit."""
    flow = json.loads(fake_flow(tokens=["ok"]))
    filler = "x" * 10_200
    flow["nodes"].extend(node(f"memory_{i}", "bufferMemory", "Memory", {"note": filler}) for i in range(998))
    return json.dumps({"name": "largest", "flowData": json.dumps(flow)}).encode()


def largest_history() -> bytes:
    """1,000 turns (the default limit) filling most of the 10 MiB body limit."""
    turn = "y" * 10_300
    history = [{"role": "userMessage" if i % 2 == 0 else "apiMessage", "content": turn} for i in range(1000)]
    return json.dumps({"question": "q", "history": history}).encode()


def _latencies(probe: PingProbe) -> dict[str, float]:
    values = sorted(value * 1000 for value in probe.latencies or [0.0])
    return {
        "pings": len(values),
        "median_ms": round(statistics.median(values), 2),
        "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))], 2),
        "max_ms": round(values[-1], 2),
    }


def _ping_while(base: str, action: Any, repeats: int) -> dict[str, Any]:
    with httpx.Client(base_url=base, timeout=120) as client, PingProbe(base) as probe:
        started = time.perf_counter()
        for _ in range(repeats):
            response = action(client)
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
        seconds = time.perf_counter() - started
    return {**_latencies(probe), "requests": repeats, "seconds_per_request": round(seconds / repeats, 3)}


def responsiveness(server: Proc, stub: Proc, repeats: int) -> dict[str, Any]:
    """Ping latency at rest, while the largest chatflow is saved, while the largest history is sent."""
    base = server.url
    chatflow, history = largest_chatflow(), largest_history()
    with httpx.Client(base_url=base, timeout=60) as client:
        created = client.post(
            "/api/v1/chatflows",
            json={
                "name": "history",
                "flowData": chain_flow(openai_model(stub.url + "/v1", modelName="stub?tokens=5")),
            },
        )
        created.raise_for_status()
        chat = created.json()["id"]
    headers = {"content-type": "application/json"}
    with PingProbe(base) as idle:
        time.sleep(1.0)
    saving = _ping_while(
        base, lambda c: c.post("/api/v1/chatflows", content=chatflow, headers=headers), repeats
    )
    sending = _ping_while(
        base, lambda c: c.post(f"/api/v1/prediction/{chat}", content=history, headers=headers), repeats
    )
    worst = max(saving["max_ms"], sending["max_ms"])
    return {
        "chatflow_bytes": len(chatflow),
        "history_bytes": len(history),
        "idle": _latencies(idle),
        "saving_largest_chatflow": saving,
        "sending_largest_history": sending,
        "worst_ms": worst,
        "target_ms": PING_TARGET_MS,
        "pass": worst <= PING_TARGET_MS,
    }


def big_chatflows(server: Proc, count: int, megabytes: int) -> dict[str, Any]:
    """RSS as `count` chatflows of `megabytes` MB are created, each run once, then deleted."""
    base = server.url
    before = _rss_mib(server.pid)
    filler = "z" * (megabytes * 1024 * 1024)
    ids: list[str] = []
    with httpx.Client(base_url=base, timeout=120) as client:
        for number in range(count):
            flow = json.loads(fake_flow(tokens=["ok"]))
            flow["nodes"][0]["data"]["inputs"]["note"] = filler + str(number)
            created = client.post(
                "/api/v1/chatflows", json={"name": f"big-{number}", "flowData": json.dumps(flow)}
            )
            created.raise_for_status()
            ids.append(created.json()["id"])
            client.post(f"/api/v1/prediction/{ids[-1]}", json={"question": "q"}).raise_for_status()
        loaded = _rss_mib(server.pid)
        for chatflow_id in ids:
            client.delete(f"/api/v1/chatflows/{chatflow_id}").raise_for_status()
    time.sleep(1.0)
    return {
        "count": count,
        "megabytes": megabytes,
        "rss_before_mib": before,
        "rss_with_them_mib": loaded,
        "rss_after_delete_mib": _rss_mib(server.pid),
    }


async def deaf_client(server: Proc, stub: Proc, tokens: int) -> dict[str, Any]:
    """A client that sends its request and never reads while `tokens` tokens stream: the server's RSS,
    sampled every 20 ms, and whether the run finished and was stored in full."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        flow = chain_flow(openai_model(stub.url + "/v1", modelName=f"stub?tokens={tokens}"))
        created = await client.post("/api/v1/chatflows", json={"name": "deaf", "flowData": flow})
        created.raise_for_status()
        chatflow_id = created.json()["id"]
        body = json.dumps({"question": "q", "streaming": True, "chatId": "deaf"}).encode()
        head = (
            f"POST /api/v1/prediction/{chatflow_id} HTTP/1.1\r\nHost: bench\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        before = _rss_mib(server.pid)
        peak = before
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        host, port = server.url.removeprefix("http://").split(":")
        sock.connect((host, int(port)))
        sock.sendall(head + body)  # ... and never read
        started = time.perf_counter()
        stored: list[dict[str, Any]] = []
        try:
            while time.perf_counter() - started < 120:
                peak = max(peak, _rss_mib(server.pid))
                rows = await client.get(f"/api/v1/chatmessage/{chatflow_id}", params={"chatId": "deaf"})
                stored = rows.json()
                if len(stored) == 2 and stored[1]["status"] != "running":
                    break
                await asyncio.sleep(0.02)
        finally:
            sock.close()
        seconds = time.perf_counter() - started
    answer = stored[1]["content"] if len(stored) == 2 else ""
    return {
        "tokens": tokens,
        "rss_before_mib": before,
        "rss_peak_mib": peak,
        "rss_growth_mib": round(peak - before, 1),
        "answer_mib": round(len(answer) / 1024 / 1024, 1),
        "stored_status": stored[1]["status"] if len(stored) == 2 else None,
        "stored_whole": answer == "".join(f"t{i} " for i in range(tokens)),
        "seconds": round(seconds, 2),
    }
